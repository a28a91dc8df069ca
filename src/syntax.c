/* HTTP's small lexical pieces: tokens, lists, dates. */
#include "pyruvate/syntax.h"

#include <string.h>
#include <strings.h>
#include <time.h>

const char syntax_month_names[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

int syntax_is_tchar(unsigned char c)
{
    static const char others[] = "!#$%&'*+-.^_`|~";
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c != 0 && strchr(others, c) != NULL;
}

static int is_list_space(char c)
{
    return c == ' ' || c == '\t';
}

int syntax_list_next(const char *list, size_t len, size_t *pos, struct span *item)
{
    size_t i = *pos;
    while (i < len && (list[i] == ',' || is_list_space(list[i])))
        i++;
    size_t start = i;
    while (i < len && list[i] != ',')
        i++;
    size_t end = i;
    while (end > start && is_list_space(list[end - 1]))
        end--;
    *pos = i;
    *item = (struct span){.offset = start, .len = end - start};
    return end > start;
}

int syntax_list_has(const char *list, size_t len, const char *token)
{
    size_t pos = 0, token_len = strlen(token);
    struct span item;
    while (syntax_list_next(list, len, &pos, &item))
        if (item.len == token_len && strncasecmp(list + item.offset, token, token_len) == 0)
            return 1;
    return 0;
}

void syntax_http_date(time_t t, char out[SYNTAX_DATE_LEN + 1])
{
    /* Fixed English names: strftime would follow the process locale. */
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    struct tm tm;
    gmtime_r(&t, &tm);
    /* Fields are filled digit by digit: the values are bounded by gmtime_r,
     * which the compiler cannot see through a format string. */
    char *p = out;
    memcpy(p, days[tm.tm_wday % 7], 3);
    p += 3;
    *p++ = ',';
    *p++ = ' ';
    *p++ = (char)('0' + tm.tm_mday / 10);
    *p++ = (char)('0' + tm.tm_mday % 10);
    *p++ = ' ';
    memcpy(p, syntax_month_names[tm.tm_mon % 12], 3);
    p += 3;
    *p++ = ' ';
    int year = (tm.tm_year + 1900) % 10000;
    *p++ = (char)('0' + year / 1000);
    *p++ = (char)('0' + year / 100 % 10);
    *p++ = (char)('0' + year / 10 % 10);
    *p++ = (char)('0' + year % 10);
    const int clock[3] = {tm.tm_hour, tm.tm_min, tm.tm_sec};
    for (int i = 0; i < 3; i++) {
        *p++ = i ? ':' : ' ';
        *p++ = (char)('0' + clock[i] / 10);
        *p++ = (char)('0' + clock[i] % 10);
    }
    memcpy(p, " GMT", 5);
}
