/* Tests for src/syntax.c: tokens and comma-separated lists. */
#include <check.h>
#include <string.h>
#include <time.h>

#include "pyruvate/common.h"
#include "pyruvate/syntax.h"
#include "suites.h"

START_TEST(test_tchar)
{
    const char *tchars = "!#$%&'*+-.^_`|~09azAZ";
    for (const char *c = tchars; *c; c++)
        ck_assert_msg(syntax_is_tchar((unsigned char)*c), "%c", *c);
    const char *others = " \t\r\n\"(),/:;<=>?@[\\]{}\x7f\x80\xff";
    for (const char *c = others; *c; c++)
        ck_assert_msg(!syntax_is_tchar((unsigned char)*c), "0x%02x", (unsigned char)*c);
    ck_assert(!syntax_is_tchar(0));
}
END_TEST

struct list_case {
    const char *list;
    const char *items; /* the elements, each followed by '|' */
};

static const struct list_case list_cases[] = {
    {"", ""},
    {" , ,\t,", ""},
    {"chunked", "chunked|"},
    {"gzip, chunked", "gzip|chunked|"},
    {" gzip ,\tchunked\t,", "gzip|chunked|"},
    {",,a,,b c ,", "a|b c|"},
};

START_TEST(test_list_next)
{
    const struct list_case *c = &list_cases[_i];
    char got[64] = "";
    size_t pos = 0, len = strlen(c->list), n = 0;
    struct span item;
    while (syntax_list_next(c->list, len, &pos, &item)) {
        ck_assert_uint_lt(n + item.len + 1, sizeof(got));
        memcpy(got + n, c->list + item.offset, item.len);
        n += item.len;
        got[n++] = '|';
        got[n] = '\0';
    }
    ck_assert_uint_eq(pos, len);
    ck_assert_str_eq(got, c->items);
}
END_TEST

START_TEST(test_list_has)
{
    ck_assert(syntax_list_has("keep-alive, Close", 17, "close"));
    ck_assert(syntax_list_has("close", 5, "close"));
    ck_assert(!syntax_list_has("closed, unclose", 15, "close"));
    ck_assert(!syntax_list_has("", 0, "close"));
    ck_assert(!syntax_list_has("clo se", 6, "close"));
}
END_TEST

START_TEST(test_month_names)
{
    ck_assert_str_eq(syntax_month_names[0], "Jan");
    ck_assert_str_eq(syntax_month_names[11], "Dec");
}
END_TEST

struct date_case {
    time_t t;
    const char *text;
};

static const struct date_case date_cases[] = {
    {0, "Thu, 01 Jan 1970 00:00:00 GMT"},
    {784111777, "Sun, 06 Nov 1994 08:49:37 GMT"},
    {951782400, "Tue, 29 Feb 2000 00:00:00 GMT"},
    {1709251199, "Thu, 29 Feb 2024 23:59:59 GMT"},
    {2147483647, "Tue, 19 Jan 2038 03:14:07 GMT"},
    {(time_t)4102444799LL, "Thu, 31 Dec 2099 23:59:59 GMT"},
};

START_TEST(test_http_date)
{
    const struct date_case *c = &date_cases[_i];
    char out[SYNTAX_DATE_LEN + 1];
    memset(out, '#', sizeof(out));
    syntax_http_date(c->t, out);
    ck_assert_str_eq(out, c->text);
    ck_assert_uint_eq(strlen(out), SYNTAX_DATE_LEN);
}
END_TEST

Suite *make_syntax_suite(void)
{
    Suite *s = suite_create("syntax");
    TCase *core = tcase_create("core");
    tcase_add_test(core, test_tchar);
    tcase_add_loop_test(core, test_list_next, 0, ARRAY_SIZE(list_cases));
    tcase_add_test(core, test_list_has);
    tcase_add_test(core, test_month_names);
    tcase_add_loop_test(core, test_http_date, 0, ARRAY_SIZE(date_cases));
    suite_add_tcase(s, core);
    return s;
}
