/* wsgi.input: a file-like reader over the request body that the acceptor
 * buffered, without copying it. Needs the GIL. */
#ifndef PYRUVATE_INPUT_H
#define PYRUVATE_INPUT_H

#include "pyruvate/state.h"

/* Returns a new input object reading data[0..len). The memory must stay
 * valid until input_detach(). */
PyObject *input_new(struct module_state *state, const char *data, Py_ssize_t len);

/* Cuts the object off from the body memory: reads return b"" afterwards,
 * in case the app kept a reference past its request. */
void input_detach(PyObject *input);

extern PyType_Spec input_spec;

#endif
