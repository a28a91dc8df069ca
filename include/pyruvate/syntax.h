/* HTTP's small lexical pieces (RFC 9110 §5.6), shared by the request and
 * the response side: tokens, comma-separated lists, dates. */
#ifndef PYRUVATE_SYNTAX_H
#define PYRUVATE_SYNTAX_H

#include <stddef.h>
#include <time.h>

#include "pyruvate/common.h"

/* RFC 9110 §5.6.2: true when c may stand in a token (tchar). */
int syntax_is_tchar(unsigned char c);

/* Steps *pos through the comma-separated list[0..len) (RFC 9110 §5.6.1).
 * Returns 1 with the next non-empty element, without its surrounding
 * whitespace, in *item (an offset into list); 0 when none is left. */
int syntax_list_next(const char *list, size_t len, size_t *pos, struct span *item);

/* True when the list holds token, compared case-insensitively. */
int syntax_list_has(const char *list, size_t len, const char *token);

/* Length of an IMF-fixdate such as "Sun, 06 Nov 1994 08:49:37 GMT". */
#define SYNTAX_DATE_LEN 29

/* Writes the RFC 9110 §5.6.7 date for t into out (SYNTAX_DATE_LEN + 1 bytes). */
void syntax_http_date(time_t t, char out[SYNTAX_DATE_LEN + 1]);

/* "Jan" to "Dec" (RFC 9110 §5.6.7, also the access log's dates). */
extern const char syntax_month_names[12][4];

#endif
