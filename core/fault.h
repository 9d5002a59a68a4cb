/* Containing SIGBUS from image loads. Private to swapread.
 *
 * An image is an mmap of a file that someone else may shrink; a load past
 * the new end raises SIGBUS. Every code path that loads from an image
 * mapping runs inside a fault scope on its own thread:
 *
 *   sr__fault_scope_t scope;
 *   if (SR__FAULT_CATCH(&scope)) {        // a fault landed here
 *     ...undo, return SR_EBEYOND...       // scope already left
 *   }
 *   sr__fault_enter(&scope);
 *   ...loads from the mapping...
 *   sr__fault_leave(&scope);
 *
 * A process-wide SIGBUS handler (installed on first image open, put back on
 * a later open if SIGBUS was reset to SIG_DFL/SIG_IGN or to the handler ours
 * replaced; SA_NODEFER) jumps back to the innermost scope of the faulting
 * thread and chains to the previously installed handler for any other
 * SIGBUS. Locals changed between SR__FAULT_CATCH and the fault must be
 * volatile; keep the loads in a separate non-inlined function.
 */
#ifndef SR_FAULT_H
#define SR_FAULT_H

#include <assert.h>
#include <setjmp.h>
#include <stdatomic.h>

#if defined(__GNUC__)
/* Static TLS: reading it from the signal handler never allocates. */
#define SR__TLS_MODEL __attribute__((tls_model("initial-exec")))
#else
#define SR__TLS_MODEL
#endif

typedef struct sr__fault_scope_s {
  sigjmp_buf env;
  struct sr__fault_scope_s* prev;
} sr__fault_scope_t;

/* The innermost scope of this thread, or NULL (core/fault.c). volatile:
 * the handler reads it on the same thread, between any two instructions.
 * Only sr__fault_enter/leave and the handler touch it. */
extern _Thread_local sr__fault_scope_t* volatile sr__fault_current
    SR__TLS_MODEL;

/* Non-zero when control returns here from a fault (the scope is then
 * already left). sigsetjmp must run in the caller's frame, hence a macro;
 * the mask is not saved (SA_NODEFER keeps SIGBUS unblocked). */
#define SR__FAULT_CATCH(scope) (sigsetjmp((scope)->env, 0) != 0)

/* Installs (or puts back) the process-wide handler; called on every image
 * open. 0 or a negated errno. */
int sr__fault_init(void);

/* Pushes scope on this thread's stack. SR__FAULT_CATCH(scope) must have run
 * in the caller's frame just before. Inline: the per-read cost of a scope
 * is the sigsetjmp and these few stores. */
static inline void sr__fault_enter(sr__fault_scope_t* scope) {
  assert(scope != NULL);
  scope->prev = sr__fault_current;
  atomic_signal_fence(memory_order_seq_cst);
  sr__fault_current = scope;
  atomic_signal_fence(memory_order_seq_cst);
}

/* Pops scope, which must be the innermost one of this thread. */
static inline void sr__fault_leave(sr__fault_scope_t* scope) {
  assert(scope != NULL);
  assert(sr__fault_current == scope);
  atomic_signal_fence(memory_order_seq_cst);
  sr__fault_current = scope->prev;
  atomic_signal_fence(memory_order_seq_cst);
}

#endif /* SR_FAULT_H */
