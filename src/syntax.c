/* HTTP's small lexical pieces: tokens, lists, month names. */
#include "pyruvate/syntax.h"

#include <string.h>
#include <strings.h>

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
