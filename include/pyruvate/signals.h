/* The process-wide side of serve(): its handlers for SIGTERM and SIGINT
 * (installed only where the interpreter's defaults are, so an
 * application's own handlers stay in charge), the wake-up descriptor that
 * makes a signal end the serving thread's wait at once, and what the
 * handlers recorded. Python signal handlers run in the main thread only;
 * from another thread serve() installs nothing. Needs the GIL. */
#ifndef PYRUVATE_SIGNALS_H
#define PYRUVATE_SIGNALS_H

#include "pyruvate/state.h"

#include "pyruvate/common.h"

/* What serve() changes in the process and must put back. */
struct saved_signals {
    PyObject *signal_module;
    PyObject *previous_sigterm; /* NULL when we did not replace it */
    PyObject *previous_sigint;  /* NULL when we did not replace it */
    int previous_wakeup_fd;     /* -2 when set_wakeup_fd was not ours to call */
};

/* Clears what was recorded, then routes SIGTERM and SIGINT to
 * signals_on_signal unless the application installed its own handlers,
 * and points signal.set_wakeup_fd at wake_fd (main thread only). */
void signals_install(PyObject *module, struct saved_signals *saved, int wake_fd);

/* Puts back what signals_install replaced; keeps a pending exception. */
void signals_restore(struct saved_signals *saved);

/* The handler itself (module function _on_signal): only records the signal. */
PyObject *signals_on_signal(PyObject *module, PyObject *args);

/* Takes one recorded signal: SIGINT before SIGTERM, 0 when none is left. */
int signals_take(void);

/* Is a signal recorded and not yet taken? */
int signals_pending(void);

#endif
