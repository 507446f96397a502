// A chunked copier metered by Tollgate from C++17 through include/tollgate.hpp: worker threads
// copy a source buffer in 64 KiB chunks and ask Tollgate before each one. The Active key covers
// half of the data; the Reserved key takes over mid-copy, and the event handler prints the
// switch the moment it happens, on the engine's callback thread, while the workers go on.
//
// Usage: copier STATE_DIR [THREADS] [MIB]
//   STATE_DIR  a Tollgate state directory (created if needed)
//   THREADS    worker threads (default 4)
//   MIB        size of the data to copy in MiB (default 32)
//
// Exits 0 when the copy is complete, the destination equals the source, and the license
// charged exactly the bytes copied over the pair's life (tg_usage_v2's total).
//
// Build: c++ -std=c++17 copier.cpp $(pkg-config --cflags --libs tollgate) -lpthread

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "tollgate.hpp"

namespace {

constexpr uint64_t kChunk = 64 * 1024;

std::string data_volume_key(const std::string &id, uint64_t limit) {
    return "{\"id\": \"" + id +
           "\", \"delivery\": \"online\", \"kind\": \"commercial\", \"edition\": \"standard\", "
           "\"scheme\": {\"data_volume\": {\"limit_bytes\": " +
           std::to_string(limit) + "}}}";
}

} // namespace

int main(int argc, char **argv) {
    if (argc < 2 || argc > 4) {
        std::fprintf(stderr, "usage: %s STATE_DIR [THREADS] [MIB]\n", argv[0]);
        return 2;
    }
    const int threads = argc > 2 ? std::atoi(argv[2]) : 4;
    const uint64_t size = (argc > 3 ? std::strtoull(argv[3], nullptr, 10) : 32) << 20;
    if (threads < 1 || size == 0) {
        std::fprintf(stderr, "THREADS and MIB must be positive\n");
        return 2;
    }
    if (!tollgate::versions_match()) {
        std::fprintf(stderr, "built for Tollgate %d.%d.%d, running with %s\n",
                     TOLLGATE_VERSION_MAJOR, TOLLGATE_VERSION_MINOR, TOLLGATE_VERSION_PATCH,
                     tg_version());
        return 1;
    }

    try {
        // Declared before the engine, which calls the handler until it is destroyed.
        std::atomic<int> switches{0};
        tollgate::Engine engine(argv[1]);
        engine.on_event([&switches](const tg_event &event) {
            if (event.kind == TG_EVENT_SWITCHED) {
                switches.fetch_add(1, std::memory_order_relaxed);
                std::printf("switched: key %s is %s, now metering %s (project %s, event %llu)\n",
                            event.previous_key, event.reason, event.key, event.project,
                            static_cast<unsigned long long>(event.seq));
                std::fflush(stdout);
            }
        });

        const std::string name = "copy-" + std::to_string(std::chrono::steady_clock::now()
                                                              .time_since_epoch()
                                                              .count());
        engine.create_project(name);
        engine.add_key(name, data_volume_key(name + "-A", size / 2));
        engine.add_reserve(name, data_volume_key(name + "-R", size));
        tollgate::Project project = engine.project(name);

        std::vector<unsigned char> src(size), dst(size);
        for (uint64_t i = 0; i < size; i++) {
            src[i] = static_cast<unsigned char>(i * 131 + 7);
        }
        std::atomic<uint64_t> next{0}, copied{0}, refusals{0};
        std::vector<std::thread> workers;
        for (int t = 0; t < threads; t++) {
            workers.emplace_back([&] {
                for (;;) {
                    // Relaxed: hands out offsets; the copies publish nothing through it.
                    uint64_t offset = next.fetch_add(kChunk, std::memory_order_relaxed);
                    if (offset >= size) {
                        return;
                    }
                    uint64_t length = std::min(kChunk, size - offset);
                    if (!project.consume(length)) { // ask before moving the bytes
                        refusals.fetch_add(1, std::memory_order_relaxed);
                        return;
                    }
                    std::memcpy(dst.data() + offset, src.data() + offset, length);
                    copied.fetch_add(length, std::memory_order_relaxed);
                }
            });
        }
        for (std::thread &worker : workers) {
            worker.join();
        }
        // The switch reaches the handler a moment after the consume that made it.
        for (int waited = 0; waited < 20000 && switches.load() == 0; waited += 5) {
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
        engine.on_event(nullptr);

        const tg_usage_v2 usage = project.lifetime_usage();
        const bool identical = src == dst;
        std::printf("copied          %llu of %llu bytes with %d threads\n",
                    static_cast<unsigned long long>(copied.load()),
                    static_cast<unsigned long long>(size), threads);
        std::printf("now active      %s, %llu of %llu bytes used\n", usage.active_key,
                    static_cast<unsigned long long>(usage.current.active_used),
                    static_cast<unsigned long long>(usage.current.active_limit));
        std::printf("switches        %llu (handler saw %d)\n",
                    static_cast<unsigned long long>(usage.current.switches), switches.load());
        std::printf("charged         %llu bytes over the pair's life\n",
                    static_cast<unsigned long long>(usage.total_used));
        if (copied.load() == size && usage.total_used == size && usage.current.switches == 1 &&
            switches.load() == 1 && refusals.load() == 0 && identical &&
            std::string(usage.active_key) == name + "-R") {
            std::printf("OK: every byte copied was granted and charged exactly once\n");
            return 0;
        }
        std::printf("FAILED: the totals do not match\n");
        return 1;
    } catch (const tollgate::Error &e) {
        std::fprintf(stderr, "%s\n", e.what());
        return 1;
    }
}
