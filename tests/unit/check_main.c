/* The one Check runner: every suite, forked by default (CK_FORK=no for gdb
 * or valgrind), selected with CK_RUN_SUITE / CK_RUN_CASE. */
#include <stdlib.h>

#include "suites.h"

int main(void)
{
    /* `make unit` exports CK_RUN_SUITE even when SUITE is unset, and Check
     * would then look for a suite named "" and run nothing. */
    const char *suite = getenv("CK_RUN_SUITE");
    if (suite != NULL && suite[0] == '\0')
        unsetenv("CK_RUN_SUITE");

    SRunner *runner = srunner_create(make_acceptor_suite());
    srunner_add_suite(runner, make_buf_suite());
    srunner_add_suite(runner, make_conn_suite());
    srunner_add_suite(runner, make_fdlimit_suite());
    srunner_add_suite(runner, make_handoff_suite());
    srunner_add_suite(runner, make_http_status_suite());
    srunner_add_suite(runner, make_idle_suite());
    srunner_add_suite(runner, make_listen_suite());
    srunner_add_suite(runner, make_log_suite());
    srunner_add_suite(runner, make_metrics_suite());
    srunner_add_suite(runner, make_park_suite());
    srunner_add_suite(runner, make_pollset_suite());
    srunner_add_suite(runner, make_pool_suite());
    srunner_add_suite(runner, make_proxy_suite());
    srunner_add_suite(runner, make_registry_suite());
    srunner_add_suite(runner, make_request_suite());
    srunner_add_suite(runner, make_response_suite());
    srunner_add_suite(runner, make_room_suite());
    srunner_add_suite(runner, make_syntax_suite());
    srunner_add_suite(runner, make_systemd_suite());
    srunner_add_suite(runner, make_wakeup_suite());

    srunner_run_all(runner, CK_ENV); /* CK_VERBOSITY, default "normal" */
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
