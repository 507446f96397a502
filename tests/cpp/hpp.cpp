// include/tollgate.hpp: errors become tollgate::Error with the status and the library's message;
// metering refusals are false or 0, not exceptions; Options reach the engine; a handler that
// throws neither crashes nor stops delivery; a moved Engine keeps its handler.
//
// Usage: hpp STATE_DIR   (a fresh, empty directory)
// Exits 0 when every check holds; otherwise prints the failure and exits 1.

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <utility>

#include "tollgate.hpp"

namespace {

int checks = 0;

void require(bool condition, const char *what) {
    checks++;
    if (!condition) {
        std::fprintf(stderr, "check failed: %s\n  last error: %s\n", what,
                     tg_last_error_message());
        std::exit(1);
    }
}

#define REQUIRE(condition) require((condition), #condition)

std::string key(const std::string &id, uint64_t limit) {
    return "{\"id\": \"" + id +
           "\", \"delivery\": \"online\", \"kind\": \"commercial\", \"edition\": \"standard\", "
           "\"scheme\": {\"data_volume\": {\"limit_bytes\": " +
           std::to_string(limit) + "}}}";
}

template <typename Call> tg_status status_of(Call call) {
    try {
        call();
    } catch (const tollgate::Error &e) {
        return e.status();
    }
    return TG_OK;
}

void wait_for(const std::atomic<int> &count, int at_least) {
    for (int waited = 0; waited < 20000 && count.load() < at_least; waited += 5) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
}

} // namespace

int main(int argc, char **argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s STATE_DIR\n", argv[0]);
        return 2;
    }
    const std::string base = argv[1];
    REQUIRE(tollgate::versions_match());
    REQUIRE(tollgate::status_message(TG_NO_ACTIVE_KEY) == "the slot pair has no active license key");

    // Options: open-existing refuses a missing state with TG_NOT_FOUND.
    tollgate::Options only_existing;
    only_existing.open_existing().admin_lock_timeout_ms(1000);
    REQUIRE(status_of([&] { tollgate::Engine(base + "/missing", only_existing); }) ==
            TG_NOT_FOUND);
    try {
        tollgate::Engine engine(base + "/missing", only_existing);
        REQUIRE(false);
    } catch (const tollgate::Error &e) {
        const std::string what = e.what();
        REQUIRE(what.find("tg_engine_open_with_options: TG_NOT_FOUND: state directory") == 0);
        REQUIRE(what.find("holds no Tollgate state") != std::string::npos);
    }
    REQUIRE(status_of([] { tollgate::Options().trust("not a key"); }) == TG_INVALID_ARGUMENT);

    std::atomic<int> events{0};
    tollgate::Engine engine(base + "/state", tollgate::Options().capacity(8));
    engine.on_event([&events](const tg_event &) {
        events.fetch_add(1);
        throw std::runtime_error("a handler that throws");
    });
    engine.create_project("p");
    REQUIRE(status_of([&] { engine.create_project("p"); }) == TG_ALREADY_EXISTS);
    REQUIRE(status_of([&] { engine.project("nope"); }) == TG_NOT_FOUND);
    engine.add_key("p", key("A-1", 100));
    engine.add_reserve("p", key("A-2", 50));
    wait_for(events, 3);
    REQUIRE(events.load() == 3); // project_created, key_added twice: the throws were caught

    // A moved engine keeps its handler and its handle.
    tollgate::Engine moved = std::move(engine);
    REQUIRE(engine.get() == nullptr);
    const tollgate::Engine &reader = moved; // opening a project does not change the engine
    tollgate::Project project = reader.project("p");
    REQUIRE(project.consume(120));      // crosses to the reserve
    REQUIRE(!project.consume(100));     // refused: 30 remain; nothing charged
    REQUIRE(project.consume_partial(100) == 30);
    REQUIRE(project.consume_partial(1) == 0);
    const tg_usage usage = project.usage();
    REQUIRE(usage.active_used == 50 && usage.active_limit == 50 && usage.switches == 1);
    const tg_usage_v2 lifetime = project.lifetime_usage();
    REQUIRE(lifetime.total_used == 150);
    REQUIRE(std::string(lifetime.active_key) == "A-2");
    REQUIRE(moved.keys_json("p").find("\"status\":\"retired\",\"used\":100") != std::string::npos);
    wait_for(events, 6);
    moved.on_event(nullptr);
    REQUIRE(moved.events_json(0, 1000).find("\"kind\":\"switched\"") != std::string::npos);

    std::printf("hpp: %d checks passed\n", checks);
    return 0;
}
