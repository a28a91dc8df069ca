/* The StartResponse type: PEP 3333's start_response and its write(), one
 * per worker. Needs the GIL. */
#ifndef PYRUVATE_START_RESPONSE_H
#define PYRUVATE_START_RESPONSE_H

#include "pyruvate/state.h"

struct worker;

/* The type spec, added to the module at import. */
extern PyType_Spec start_response_spec;

/* Creates w's start_response callable. New reference or NULL. */
PyObject *start_response_new(struct worker *w);

/* After a request: when the app kept start_response or its write(), w gets
 * new ones, and the kept ones raise from then on. */
void start_response_renew_if_kept(struct worker *w);

#endif
