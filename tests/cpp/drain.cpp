// Drains one project through tg_consume_batch until nothing is left, then prints what it was
// granted: one of the four languages of ffi/tests/mixed_languages.rs.
// Usage: drain STATE_DIR PROJECT SEED GO_FILE
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "tollgate.h"

namespace {

struct EngineCloser {
    void operator()(tg_engine *e) const { tg_engine_close(e); }
};
struct ProjectCloser {
    void operator()(tg_project *p) const { tg_project_close(p); }
};

void check(tg_status status, const char *what) {
    if (status != TG_OK) {
        throw std::runtime_error(std::string(what) + ": " + tg_last_error_message());
    }
}

}  // namespace

int main(int argc, char **argv) {
    if (argc != 5) {
        std::fprintf(stderr, "usage: drain STATE_DIR PROJECT SEED GO_FILE\n");
        return 2;
    }
    try {
        tg_engine *raw_engine = nullptr;
        check(tg_engine_open(argv[1], &raw_engine), "open engine");
        std::unique_ptr<tg_engine, EngineCloser> engine(raw_engine);
        tg_project *raw_project = nullptr;
        check(tg_project_open(engine.get(), argv[2], &raw_project), "open project");
        std::unique_ptr<tg_project, ProjectCloser> project(raw_project);
        std::uint64_t x = std::strtoull(argv[3], nullptr, 10) * 0x9E3779B97F4A7C15ull | 1;
        while (!std::filesystem::exists(argv[4])) {
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        std::uint64_t granted = 0;
        std::vector<std::uint64_t> batch(8);
        for (;;) {
            for (auto &amount : batch) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                amount = 1 + x % 1024;
            }
            std::size_t count = 0;
            tg_status status = tg_consume_batch(project.get(), batch.data(), batch.size(), &count);
            for (std::size_t i = 0; i < count; ++i) {
                granted += batch[i];
            }
            if (status == TG_OK) {
                continue;
            }
            if (status != TG_EXHAUSTED) {
                check(status, "consume_batch");
            }
            std::uint64_t rest = 0;
            status = tg_consume_partial(project.get(), UINT64_MAX, &rest);
            if (status == TG_EXHAUSTED) {
                break;
            }
            check(status, "consume_partial");
            granted += rest;
        }
        std::printf("GRANTED %llu\n", static_cast<unsigned long long>(granted));
    } catch (const std::exception &e) {
        std::fprintf(stderr, "%s\n", e.what());
        return 1;
    }
    return 0;
}
