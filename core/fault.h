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

#include <setjmp.h>

typedef struct sr__fault_scope_s {
  sigjmp_buf env;
  struct sr__fault_scope_s* prev;
} sr__fault_scope_t;

/* Non-zero when control returns here from a fault (the scope is then
 * already left). sigsetjmp must run in the caller's frame, hence a macro;
 * the mask is not saved (SA_NODEFER keeps SIGBUS unblocked). */
#define SR__FAULT_CATCH(scope) (sigsetjmp((scope)->env, 0) != 0)

/* Installs (or puts back) the process-wide handler; called on every image
 * open. 0 or a negated errno. */
int sr__fault_init(void);
void sr__fault_enter(sr__fault_scope_t* scope);
void sr__fault_leave(sr__fault_scope_t* scope);

#endif /* SR_FAULT_H */
