/* serve()'s signal handlers and what they recorded (signals.h). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "pyruvate/signals.h"

#include <signal.h>
#include <stdatomic.h>

/* Set by signals_on_signal; one serve() at a time. */
static atomic_int sigterm_received;
static atomic_int sigint_received;

/* Only records the signal. Python runs a signal handler wherever the main
 * thread happens to be, often inside a logging call of relay_logs(); Python's
 * own SIGINT handler raised KeyboardInterrupt there, and whether the record
 * had been written by then could not be known. serve() raises the
 * KeyboardInterrupt itself, between records. */
PyObject *signals_on_signal(PyObject *module, PyObject *args)
{
    int signum;
    PyObject *frame;
    PYR_UNUSED(module);
    if (!PyArg_ParseTuple(args, "iO", &signum, &frame))
        return NULL;
    atomic_store(signum == SIGINT ? &sigint_received : &sigterm_received, 1);
    Py_RETURN_NONE;
}

int signals_take(void)
{
    if (atomic_exchange(&sigint_received, 0))
        return SIGINT;
    if (atomic_exchange(&sigterm_received, 0))
        return SIGTERM;
    return 0;
}

int signals_pending(void)
{
    return atomic_load(&sigint_received) || atomic_load(&sigterm_received);
}

/* Installs handler for signum if the current handler is the interpreter's
 * default (signal.<default_name>): an application's own handler stays in
 * charge. Returns the replaced handler (a new reference) or NULL. */
static PyObject *replace_default_handler(PyObject *signal_module, int signum,
                                         const char *default_name, PyObject *handler)
{
    PyObject *replaced = NULL;
    PyObject *current = PyObject_CallMethod(signal_module, "getsignal", "i", signum);
    PyObject *default_handler = PyObject_GetAttrString(signal_module, default_name);
    if (current && default_handler && handler &&
        PyObject_RichCompareBool(current, default_handler, Py_EQ) == 1) {
        PyObject *r = PyObject_CallMethod(signal_module, "signal", "iO", signum, handler);
        if (r)
            replaced = Py_NewRef(current);
        Py_XDECREF(r);
    }
    PyErr_Clear();
    Py_XDECREF(current);
    Py_XDECREF(default_handler);
    return replaced;
}

/* Routes SIGTERM and SIGINT to us unless the application installed its own
 * handlers, and makes signals wake the waiting loop at once. Only the main
 * thread may do either; elsewhere the loop just polls. */
void signals_install(PyObject *module, struct saved_signals *saved, int wake_fd)
{
    atomic_store(&sigterm_received, 0);
    atomic_store(&sigint_received, 0);
    saved->previous_sigterm = NULL;
    saved->previous_sigint = NULL;
    saved->previous_wakeup_fd = -2;
    saved->signal_module = PyImport_ImportModule("signal");
    if (saved->signal_module == NULL) {
        PyErr_Clear();
        return;
    }
    PyObject *previous = PyObject_CallMethod(saved->signal_module, "set_wakeup_fd", "i", wake_fd);
    if (previous == NULL) {
        PyErr_Clear(); /* not the main thread */
        return;
    }
    saved->previous_wakeup_fd = (int)PyLong_AsLong(previous);
    Py_DECREF(previous);

    PyObject *handler = PyObject_GetAttrString(module, "_on_signal");
    saved->previous_sigterm =
        replace_default_handler(saved->signal_module, SIGTERM, "SIG_DFL", handler);
    saved->previous_sigint =
        replace_default_handler(saved->signal_module, SIGINT, "default_int_handler", handler);
    PyErr_Clear();
    Py_XDECREF(handler);
}

void signals_restore(struct saved_signals *saved)
{
    PyObject *exc_type, *exc_value, *exc_tb;
    PyErr_Fetch(&exc_type, &exc_value, &exc_tb);
    if (saved->signal_module) {
        if (saved->previous_sigterm) {
            PyObject *r = PyObject_CallMethod(saved->signal_module, "signal", "iO", SIGTERM,
                                              saved->previous_sigterm);
            Py_XDECREF(r);
        }
        if (saved->previous_sigint) {
            PyObject *r = PyObject_CallMethod(saved->signal_module, "signal", "iO", SIGINT,
                                              saved->previous_sigint);
            Py_XDECREF(r);
        }
        if (saved->previous_wakeup_fd != -2) {
            PyObject *r = PyObject_CallMethod(saved->signal_module, "set_wakeup_fd", "i",
                                              saved->previous_wakeup_fd);
            Py_XDECREF(r);
        }
        PyErr_Clear();
    }
    Py_CLEAR(saved->previous_sigterm);
    Py_CLEAR(saved->previous_sigint);
    Py_CLEAR(saved->signal_module);
    PyErr_Restore(exc_type, exc_value, exc_tb);
}
