/*
 * Tollgate for C++17: RAII handles and exceptions over the C ABI of tollgate.h, with no logic
 * of their own. Every class owns one handle and closes it in its destructor; they move but do
 * not copy. A failed call throws tollgate::Error, which carries the tg_status and the
 * library's message; the metering calls that are refused in normal operation (exhausted,
 * expired, no active key) return false or 0 instead, so that a copy loop can stop cleanly.
 *
 *   tollgate::Engine engine("/var/lib/migrator/licenses");
 *   engine.on_event([](const tg_event &event) {
 *       if (event.kind == TG_EVENT_SWITCHED) std::fprintf(stderr, "now metering %s\n", event.key);
 *   });
 *   tollgate::Project project = engine.project("warehouse");
 *   while (project.consume(64 << 20)) { ... copy 64 MiB ... }
 *
 * Threads and fork follow tollgate.h: share an Engine or a Project between threads; destroy
 * it once no other thread uses it. The event handler runs on the engine's callback thread; an
 * exception it throws is caught there and dropped (it cannot reach any caller).
 */
#ifndef TOLLGATE_HPP
#define TOLLGATE_HPP

#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>

#include "tollgate.h"

namespace tollgate {

/* A failed call: its status, and the library's message naming what was at fault. */
class Error : public std::runtime_error {
  public:
    Error(tg_status status, const char *call)
        : std::runtime_error(std::string(call) + ": " + tg_status_name(status) + ": " +
                             tg_last_error_message()),
          status_(status) {}

    tg_status status() const noexcept { return status_; }

  private:
    tg_status status_;
};

namespace detail {

inline void check(tg_status status, const char *call) {
    if (status != TG_OK) {
        throw Error(status, call);
    }
}

/* Whether `status` is a refusal of metering rather than an error. */
inline bool refused(tg_status status) noexcept {
    return status == TG_EXHAUSTED || status == TG_EXPIRED || status == TG_NO_ACTIVE_KEY;
}

/* A string the library returned, copied and freed. */
inline std::string take(char *text) {
    std::unique_ptr<char, decltype(&tg_string_free)> owned(text, &tg_string_free);
    return owned ? std::string(owned.get()) : std::string();
}

} // namespace detail

/* How to open a state directory (tg_engine_options). Setters return *this for chaining. */
class Options {
  public:
    Options() : handle_(nullptr, &tg_engine_options_free) {
        tg_engine_options *made = nullptr;
        detail::check(tg_engine_options_new(&made), "tg_engine_options_new");
        handle_.reset(made);
    }

    Options &capacity(uint32_t records) {
        detail::check(tg_engine_options_set_capacity(handle_.get(), records),
                      "tg_engine_options_set_capacity");
        return *this;
    }
    Options &flush_interval_ms(uint64_t interval) {
        detail::check(tg_engine_options_set_flush_interval_ms(handle_.get(), interval),
                      "tg_engine_options_set_flush_interval_ms");
        return *this;
    }
    Options &installation_dir(const std::string &dir) {
        detail::check(tg_engine_options_set_installation_dir(handle_.get(), dir.c_str()),
                      "tg_engine_options_set_installation_dir");
        return *this;
    }
    Options &open_existing(bool only_existing = true) {
        detail::check(tg_engine_options_set_open_existing(handle_.get(), only_existing),
                      "tg_engine_options_set_open_existing");
        return *this;
    }
    Options &admin_lock_timeout_ms(uint64_t timeout) {
        detail::check(tg_engine_options_set_admin_lock_timeout_ms(handle_.get(), timeout),
                      "tg_engine_options_set_admin_lock_timeout_ms");
        return *this;
    }
    Options &trust(const std::string &vendor_public_key) {
        detail::check(tg_engine_options_trust(handle_.get(), vendor_public_key.c_str()),
                      "tg_engine_options_trust");
        return *this;
    }

    const tg_engine_options *get() const noexcept { return handle_.get(); }

  private:
    std::unique_ptr<tg_engine_options, decltype(&tg_engine_options_free)> handle_;
};

/* A project's hot-path handle (tg_project). */
class Project {
  public:
    explicit Project(tg_project *handle) : handle_(handle, &tg_project_close) {}

    /* Grants all of `bytes` (true), or charges nothing and returns false when the license
     * refuses (exhausted, expired, no active key); throws on any other failure. */
    bool consume(uint64_t bytes) {
        tg_status status = tg_consume(handle_.get(), bytes);
        if (detail::refused(status)) {
            return false;
        }
        detail::check(status, "tg_consume");
        return true;
    }

    /* Grants as much of `bytes` as remains and returns it (0 when the license refuses). */
    uint64_t consume_partial(uint64_t bytes) {
        uint64_t granted = 0;
        tg_status status = tg_consume_partial(handle_.get(), bytes, &granted);
        if (!detail::refused(status)) {
            detail::check(status, "tg_consume_partial");
        }
        return granted;
    }

    /* The usage of the keys in the slots now. */
    tg_usage usage() const {
        tg_usage usage{};
        detail::check(tg_usage_get(handle_.get(), &usage), "tg_usage_get");
        return usage;
    }

    /* The usage over the pair's life, with the total and the keys' ids (not the hot path). */
    tg_usage_v2 lifetime_usage() const {
        tg_usage_v2 usage{};
        detail::check(tg_usage_v2_get(handle_.get(), &usage), "tg_usage_v2_get");
        return usage;
    }

    tg_project *get() const noexcept { return handle_.get(); }

  private:
    std::unique_ptr<tg_project, decltype(&tg_project_close)> handle_;
};

/* An open state directory (tg_engine). */
class Engine {
  public:
    /* What on_event calls for each event, on the engine's callback thread. */
    using Handler = std::function<void(const tg_event &)>;

    explicit Engine(const std::string &state_dir) : handle_(nullptr, &tg_engine_close) {
        tg_engine *opened = nullptr;
        detail::check(tg_engine_open(state_dir.c_str(), &opened), "tg_engine_open");
        handle_.reset(opened);
    }

    Engine(const std::string &state_dir, const Options &options)
        : handle_(nullptr, &tg_engine_close) {
        tg_engine *opened = nullptr;
        detail::check(tg_engine_open_with_options(state_dir.c_str(), options.get(), &opened),
                      "tg_engine_open_with_options");
        handle_.reset(opened);
    }

    /* Closing the engine stops the callback thread before the handler is destroyed. */
    ~Engine() { handle_.reset(); }
    Engine(Engine &&) noexcept = default;
    Engine &operator=(Engine &&other) noexcept {
        handle_ = std::move(other.handle_);
        handler_ = std::move(other.handler_);
        return *this;
    }
    Engine(const Engine &) = delete;
    Engine &operator=(const Engine &) = delete;

    void create_project(const std::string &name) {
        detail::check(tg_project_create(handle_.get(), name.c_str()), "tg_project_create");
    }
    void add_key(const std::string &project, const std::string &key_json) {
        detail::check(tg_key_add(handle_.get(), project.c_str(), key_json.c_str()),
                      "tg_key_add");
    }
    void add_reserve(const std::string &project, const std::string &key_json) {
        detail::check(tg_key_add_reserve(handle_.get(), project.c_str(), key_json.c_str()),
                      "tg_key_add_reserve");
    }
    /* Opens a project's hot-path handle; the engine is not changed (tg_project_open takes a
     * const tg_engine). */
    Project project(const std::string &name) const {
        tg_project *opened = nullptr;
        detail::check(tg_project_open(handle_.get(), name.c_str(), &opened), "tg_project_open");
        return Project(opened);
    }
    std::string keys_json(const std::string &project) const {
        char *json = nullptr;
        detail::check(tg_keys_json(handle_.get(), project.c_str(), &json), "tg_keys_json");
        return detail::take(json);
    }
    std::string events_json(uint64_t after_seq, size_t max) const {
        char *json = nullptr;
        detail::check(tg_events_json(handle_.get(), after_seq, max, &json), "tg_events_json");
        return detail::take(json);
    }
    void flush() { detail::check(tg_engine_flush(handle_.get()), "tg_engine_flush"); }

    /* Calls `handler` for each event this process records, on the engine's callback thread
     * (tg_engine_on_event); an empty handler removes it. The previous handler is not called
     * once this returns. */
    void on_event(Handler handler) {
        std::unique_ptr<Handler> next = handler ? std::make_unique<Handler>(std::move(handler))
                                                : std::unique_ptr<Handler>();
        detail::check(tg_engine_on_event(handle_.get(), next ? &Engine::deliver : nullptr,
                                         next.get()),
                      "tg_engine_on_event");
        handler_ = std::move(next);
    }

    tg_engine *get() const noexcept { return handle_.get(); }

  private:
    static void deliver(const tg_event *event, void *user_data) noexcept {
        try {
            (*static_cast<Handler *>(user_data))(*event);
        } catch (...) {
            /* Nothing may unwind into the library's thread. */
        }
    }

    /* Declared first, destroyed last: the engine is closed before the handler goes. */
    std::unique_ptr<Handler> handler_;
    std::unique_ptr<tg_engine, decltype(&tg_engine_close)> handle_;
};

/* What a status means, in words (tg_status_message). */
inline std::string status_message(tg_status status) { return tg_status_message(status); }

/* Whether the header and the library loaded are of one version. */
inline bool versions_match() noexcept { return tg_version_number() == TOLLGATE_VERSION_NUMBER; }

} // namespace tollgate

#endif /* TOLLGATE_HPP */
