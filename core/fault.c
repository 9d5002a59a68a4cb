/* SIGBUS containment for loads from image mappings. An image is a
 * MAP_SHARED mapping of a file that someone else may shrink; touching a page
 * past the new end raises SIGBUS. A process-wide SIGBUS handler (SA_SIGINFO |
 * SA_NODEFER | SA_ONSTACK) is installed on the first image open, and put
 * back on a later open if SIGBUS was reset to SIG_DFL/SIG_IGN or to the
 * handler ours replaced (what harnesses that save and restore handlers
 * around each test do). It looks at the faulting thread's innermost fault
 * scope (a _Thread_local stack of sr__fault_scope_t): if there is one, it
 * pops it and siglongjmps back to it; otherwise the signal is not ours and
 * is chained to the handler ours replaced (SA_SIGINFO or plain; SIG_IGN
 * ignores a signal sent by kill but lets a real fault take the default
 * action, as the kernel would; SIG_DFL restores the default action and lets
 * the fault re-trigger, or re-raises a sent signal). Limits: the handler is
 * process-wide; an unknown handler installed over ours is left alone (it
 * must chain to ours for faults in image reads to stay contained; wrapping
 * it could make the two chain to each other forever); the previous handler
 * is called without its own sa_mask or SA_RESETHAND semantics; a fault scope
 * must only cover loads from image mappings (anything else faulting inside
 * it would be misattributed).
 */
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <string.h>

#include "fault.h"

static pthread_mutex_t install_lock = PTHREAD_MUTEX_INITIALIZER;

/* The handler ours replaced, published through an atomic pointer into one
 * of two slots so that a re-arm never rewrites the slot the signal handler
 * may be reading. Guarded by install_lock for writers. */
static struct sigaction prev_slot[2];
static _Atomic(const struct sigaction*) prev_action;
static int prev_next;

/* See fault.h. */
_Thread_local sr__fault_scope_t* volatile sr__fault_current SR__TLS_MODEL;

/* Sent with kill()/sigqueue()/raise() rather than raised by a fault. */
static int sent_by_user(const siginfo_t* info) {
  return info == NULL || info->si_code <= 0;
}

/* Not our fault: behave as if our handler were not there. */
static void chain(int sig, siginfo_t* info, void* uctx) {
  const struct sigaction* prev = atomic_load(&prev_action);
  struct sigaction dfl;
  int saved_errno;

  if (prev == NULL) {
    /* No previous handler recorded: treat as SIG_DFL. */
  } else if (prev->sa_flags & SA_SIGINFO) {
    if (prev->sa_sigaction != NULL) {
      prev->sa_sigaction(sig, info, uctx);
      return;
    }
  } else if (prev->sa_handler == SIG_IGN) {
    if (sent_by_user(info))
      return;
    /* A real fault cannot be ignored (the kernel forces the default). */
  } else if (prev->sa_handler != SIG_DFL) {
    prev->sa_handler(sig);
    return;
  }

  /* Default action: reinstall it, then let it happen. A real fault
   * re-triggers when we return; a sent signal is re-raised (SIGBUS is not
   * blocked here thanks to SA_NODEFER). */
  saved_errno = errno;
  memset(&dfl, 0, sizeof(dfl));
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  sigaction(sig, &dfl, NULL);
  if (sent_by_user(info))
    raise(sig);
  errno = saved_errno;
}

static void on_sigbus(int sig, siginfo_t* info, void* uctx) {
  sr__fault_scope_t* scope = sr__fault_current;

  if (scope != NULL) {
    sr__fault_current = scope->prev;
    atomic_signal_fence(memory_order_seq_cst);
    siglongjmp(scope->env, 1);
  }
  chain(sig, info, uctx);
}

static int is_ours(const struct sigaction* sa) {
  /* Also matches our function reinstalled without SA_SIGINFO by code that
   * saved and restored it with signal(2). */
  return sa->sa_sigaction == on_sigbus ||
         sa->sa_handler == (void (*)(int))(void (*)(void))on_sigbus;
}

static int same_action(const struct sigaction* a, const struct sigaction* b) {
  if ((a->sa_flags & SA_SIGINFO) != (b->sa_flags & SA_SIGINFO))
    return 0;
  if (a->sa_flags & SA_SIGINFO)
    return a->sa_sigaction == b->sa_sigaction;
  return a->sa_handler == b->sa_handler;
}

/* May we put our handler over `cur`? Yes on the first install, and when
 * someone put back a disposition that cannot chain to us: SIG_DFL, SIG_IGN
 * or the very handler we replaced (harnesses that save and restore signal
 * handlers around each test do that). No when an unknown handler was
 * installed over ours: it may chain to us, and wrapping it would make a
 * foreign SIGBUS loop between the two. */
static int may_arm(const struct sigaction* cur) {
  const struct sigaction* prev = atomic_load(&prev_action);

  if (prev == NULL)
    return 1;
  if (!(cur->sa_flags & SA_SIGINFO) &&
      (cur->sa_handler == SIG_DFL || cur->sa_handler == SIG_IGN))
    return 1;
  return same_action(cur, prev);
}

/* Installs our handler (see may_arm) on every image open; the replaced
 * action becomes the one we chain to. 0 or a negated errno. */
int sr__fault_init(void) {
  struct sigaction sa, cur;
  int ours, err = 0;

  memset(&sa, 0, sizeof(sa));
  sa.sa_sigaction = on_sigbus;
  sa.sa_flags = SA_SIGINFO | SA_NODEFER | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);

  pthread_mutex_lock(&install_lock);
  if (sigaction(SIGBUS, NULL, &cur) != 0) {
    err = -errno;
    goto out_unlock;
  }
  ours = is_ours(&cur);
  if (ours && (cur.sa_flags & SA_SIGINFO))
    goto out_unlock; /* in place */
  if (!ours && !may_arm(&cur))
    goto out_unlock; /* someone else's handler is on top of ours */
  if (sigaction(SIGBUS, &sa, &cur) != 0) {
    err = -errno;
    goto out_unlock;
  }
  if (!is_ours(&cur)) {
    prev_slot[prev_next] = cur;
    atomic_store(&prev_action, &prev_slot[prev_next]);
    prev_next ^= 1;
  }
out_unlock:
  pthread_mutex_unlock(&install_lock);
  return err;
}
