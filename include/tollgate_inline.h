/*
 * tollgate_inline.h: the block path of a thread handle, inlined into the caller (C11 only).
 *
 * tg_thread_consume within its handle's block is two loads, a compare and a store; through a
 * call into the shared library the call itself costs more than that. tg_thread_consume_inline
 * does those steps here, in the caller's code, and calls tg_thread_consume for everything
 * else (taking the next block, refusals, expiry): the same results, the same rules.
 *
 *   tg_thread_project *thread;       // tg_thread_project_open(project, &thread)
 *   tg_thread_fast fast;             // tg_thread_project_fast(thread, &fast), once
 *   if (tg_thread_consume_inline(thread, &fast, n) != TG_OK) ...
 *
 * The words in `fast` stay valid until the handle is closed. Keep `fast` in a local variable
 * of the calling thread, as above: the compiler then keeps its three addresses in registers
 * across calls (through a pointer it cannot prove unchanged, it reloads them on every call).
 * Like the handle, one thread at a time. Hand-written (tollgate.h is generated); the library's Rust side uses the same words
 * with the same orderings (ThreadProject::consume_from_block).
 */
#ifndef TOLLGATE_INLINE_H
#define TOLLGATE_INLINE_H

#include "tollgate.h"

#if !defined(__cplusplus) && defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L && \
    !defined(__STDC_NO_ATOMICS__)
#include <stdatomic.h>

/* tg_thread_consume, with its block path in the caller. */
static inline enum tg_status tg_thread_consume_inline(struct tg_thread_project *thread,
                                                      const struct tg_thread_fast *fast,
                                                      uint64_t bytes) {
    _Atomic uint64_t *room = (_Atomic uint64_t *)fast->room;
    /* Relaxed (all three loads): the handle's thread is the only writer of its room and its
     * valid-until second; the clock is a coarse second. Release store: a reclaimer reading the
     * room after this process died reads no more than this. As ThreadProject::consume_from_block. */
    uint64_t left = atomic_load_explicit(room, memory_order_relaxed);
    if (bytes - 1 < left &&
        atomic_load_explicit((const _Atomic uint32_t *)fast->now, memory_order_relaxed) <
            atomic_load_explicit((const _Atomic uint32_t *)fast->valid_until,
                                 memory_order_relaxed)) {
        atomic_store_explicit(room, left - bytes, memory_order_release);
        return TG_OK;
    }
    return tg_thread_consume(thread, bytes);
}
#endif

#endif /* TOLLGATE_INLINE_H */
