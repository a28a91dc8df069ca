/* One suite per Python-free source file; check_main.c runs them all. */
#ifndef PYRUVATE_TEST_SUITES_H
#define PYRUVATE_TEST_SUITES_H

#include <check.h>

Suite *make_acceptor_suite(void);
Suite *make_buf_suite(void);
Suite *make_conn_suite(void);
Suite *make_fdlimit_suite(void);
Suite *make_handoff_suite(void);
Suite *make_http_status_suite(void);
Suite *make_idle_suite(void);
Suite *make_listen_suite(void);
Suite *make_log_suite(void);
Suite *make_metrics_suite(void);
Suite *make_park_suite(void);
Suite *make_pollset_suite(void);
Suite *make_pool_suite(void);
Suite *make_proxy_suite(void);
Suite *make_registry_suite(void);
Suite *make_request_suite(void);
Suite *make_response_suite(void);
Suite *make_room_suite(void);
Suite *make_syntax_suite(void);
Suite *make_systemd_suite(void);
Suite *make_wakeup_suite(void);

#endif
