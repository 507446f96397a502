// Uses include/tollgate.h from C++17 through a small RAII wrapper, and meters one project from
// several threads at once through the Active -> Reserved switch, checking exact totals.
//
// Usage: test_api STATE_DIR   (a fresh, empty directory)
// Exits 0 when every check holds; otherwise prints the failure and exits 1.

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "tollgate.h"

namespace tollgate {

// A failed call: the status and the library's message for it.
class Error : public std::runtime_error {
  public:
    Error(tg_status status, const std::string &call)
        : std::runtime_error(call + ": " + tg_status_name(status) + ": " +
                             tg_last_error_message()),
          status_(status) {}
    tg_status status() const { return status_; }

  private:
    tg_status status_;
};

inline void check(tg_status status, const char *call) {
    if (status != TG_OK) {
        throw Error(status, call);
    }
}

// A string the library allocated, freed by tg_string_free.
using OwnedString = std::unique_ptr<char, decltype(&tg_string_free)>;

inline std::string take(char *json) {
    OwnedString owned(json, &tg_string_free);
    return owned ? std::string(owned.get()) : std::string();
}

// A project's hot-path handle. Movable, not copyable; closes itself.
class Project {
  public:
    explicit Project(tg_project *handle) : handle_(handle, &tg_project_close) {}

    // Grants all of `bytes` or throws (nothing charged); returns false when the license is
    // exhausted, so that a caller can stop cleanly.
    bool consume(uint64_t bytes) {
        tg_status status = tg_consume(handle_.get(), bytes);
        if (status == TG_EXHAUSTED) {
            return false;
        }
        check(status, "tg_consume");
        return true;
    }

    uint64_t consume_partial(uint64_t bytes) {
        uint64_t granted = 0;
        tg_status status = tg_consume_partial(handle_.get(), bytes, &granted);
        if (status != TG_EXHAUSTED) {
            check(status, "tg_consume_partial");
        }
        return granted;
    }

    tg_usage usage() const {
        tg_usage usage{};
        check(tg_usage_get(handle_.get(), &usage), "tg_usage_get");
        return usage;
    }

  private:
    std::unique_ptr<tg_project, decltype(&tg_project_close)> handle_;
};

// An open state directory. Movable, not copyable; closes itself.
class Engine {
  public:
    explicit Engine(const std::string &dir) : handle_(nullptr, &tg_engine_close) {
        tg_engine *engine = nullptr;
        check(tg_engine_open(dir.c_str(), &engine), "tg_engine_open");
        handle_.reset(engine);
    }

    void create_project(const std::string &name) {
        check(tg_project_create(handle_.get(), name.c_str()), "tg_project_create");
    }

    void add_key(const std::string &project, const std::string &key_json) {
        check(tg_key_add(handle_.get(), project.c_str(), key_json.c_str()), "tg_key_add");
    }

    Project project(const std::string &name) {
        tg_project *project = nullptr;
        check(tg_project_open(handle_.get(), name.c_str(), &project), "tg_project_open");
        return Project(project);
    }

    std::string view_json(const std::string &project) {
        char *json = nullptr;
        check(tg_project_view_json(handle_.get(), project.c_str(), &json), "tg_project_view_json");
        return take(json);
    }

    std::string events_json(uint64_t after_seq, size_t max) {
        char *json = nullptr;
        check(tg_events_json(handle_.get(), after_seq, max, &json), "tg_events_json");
        return take(json);
    }

  private:
    std::unique_ptr<tg_engine, decltype(&tg_engine_close)> handle_;
};

} // namespace tollgate

namespace {

int checks = 0;

void require(bool condition, const std::string &what) {
    ++checks;
    if (!condition) {
        std::fprintf(stderr, "check failed: %s\n", what.c_str());
        std::exit(1);
    }
}

std::string data_volume_key(const std::string &id, uint64_t limit) {
    return "{\"id\": \"" + id +
           "\", \"delivery\": \"online\", \"kind\": \"commercial\", \"edition\": \"standard\", "
           "\"scheme\": {\"data_volume\": {\"limit_bytes\": " +
           std::to_string(limit) + "}}}";
}

size_t count_of(const std::string &text, const std::string &needle) {
    size_t count = 0;
    for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) {
        ++count;
    }
    return count;
}

constexpr uint64_t kActiveLimit = 1'000'000;
constexpr uint64_t kReserveLimit = 600'000;
constexpr uint64_t kChunk = 1'000;
constexpr int kThreads = 4;

void test_errors_become_exceptions(tollgate::Engine &engine) {
    try {
        engine.project("missing");
        require(false, "opening a missing project throws");
    } catch (const tollgate::Error &error) {
        require(error.status() == TG_NOT_FOUND, "a missing project is TG_NOT_FOUND");
        require(std::string(error.what()).find("project \"missing\" does not exist") !=
                    std::string::npos,
                std::string("the message names the project: ") + error.what());
    }
    try {
        engine.add_key("threads", "{\"id\": 1}");
        require(false, "bad key JSON throws");
    } catch (const tollgate::Error &error) {
        require(error.status() == TG_INVALID_ARGUMENT, "bad key JSON is TG_INVALID_ARGUMENT");
    }
}

// Several threads meter one project until the license is used up. Every byte granted is
// counted by the thread that got it; the totals must match the keys exactly.
void test_threads_through_the_switch(tollgate::Engine &engine) {
    engine.create_project("threads");
    engine.add_key("threads", data_volume_key("T-ACTIVE", kActiveLimit));
    engine.add_key("threads", data_volume_key("T-RESERVE", kReserveLimit));
    tollgate::Project project = engine.project("threads");
    require(engine.view_json("threads").find("\"status\":\"reserved\"") != std::string::npos,
            "the view shows the Reserved key");

    std::atomic<uint64_t> granted_total{0};
    std::vector<std::thread> workers;
    for (int t = 0; t < kThreads; ++t) {
        workers.emplace_back([&project, &granted_total] {
            uint64_t granted = 0;
            while (project.consume(kChunk)) {
                granted += kChunk;
            }
            // Whatever is left below a chunk, taken partially.
            granted += project.consume_partial(kChunk);
            granted_total.fetch_add(granted);
        });
    }
    for (std::thread &worker : workers) {
        worker.join();
    }

    const uint64_t total = granted_total.load();
    require(total == kActiveLimit + kReserveLimit,
            "granted " + std::to_string(total) + " bytes, the keys hold " +
                std::to_string(kActiveLimit + kReserveLimit));
    tg_usage usage = project.usage();
    require(usage.active_used == kReserveLimit && usage.active_limit == kReserveLimit,
            "the former reserve is Active and used up");
    require(!usage.has_reserved && usage.reserved_used == 0 && usage.reserved_limit == 0,
            "the Reserved slot is empty after the switch");
    require(usage.switches == 1, "exactly one switch, not " + std::to_string(usage.switches));
    require(!project.consume(1), "nothing is left");
}

} // namespace

int main(int argc, char **argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s STATE_DIR\n", argv[0]);
        return 2;
    }
    const std::string dir = std::string(argv[1]) + "/cpp";
    try {
        {
            tollgate::Engine engine(dir);
            test_threads_through_the_switch(engine);
            test_errors_become_exceptions(engine);
        }
        // Closing the engine wrote every queued event; the switch is in the log exactly once.
        tollgate::Engine engine(dir);
        const std::string events = engine.events_json(0, 10'000);
        require(count_of(events, "\"kind\":\"switched\"") == 1,
                "exactly one switch event:\n" + events);
        require(events.find("\"from\":\"T-ACTIVE\",\"to\":\"T-RESERVE\"") != std::string::npos,
                "the switch event names both keys");
        tollgate::Project project = engine.project("threads");
        require(project.usage().switches == 1, "the usage survives reopening");
    } catch (const tollgate::Error &error) {
        std::fprintf(stderr, "unexpected error: %s\n", error.what());
        return 1;
    }
    std::printf("test_api (C++): %d checks passed\n", checks);
    return 0;
}
