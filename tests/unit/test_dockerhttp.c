/* test_dockerhttp.c - which socket a --docker-host names. (The requests
 * themselves need an engine: tests/e2e/test_container.py.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "container/dockerhttp.h"

static void test_dockerhttp_socket_path(void **state)
{
  char buf[256], msg[512];
  unsetenv("DOCKER_HOST");
  assert_int_equal(dockerhttp_socket_path(NULL, buf, sizeof buf), 0);
  assert_string_equal(buf, "/var/run/docker.sock");
  assert_int_equal(dockerhttp_socket_path("", buf, sizeof buf), 0);
  assert_string_equal(buf, "/var/run/docker.sock");
  assert_int_equal(dockerhttp_socket_path("unix:///run/d.sock", buf, sizeof buf), 0);
  assert_string_equal(buf, "/run/d.sock");
  assert_int_equal(dockerhttp_socket_path("/tmp/x.sock", buf, sizeof buf), 0);
  assert_string_equal(buf, "/tmp/x.sock");
  setenv("DOCKER_HOST", "unix:///from/env.sock", 1);
  assert_int_equal(dockerhttp_socket_path(NULL, buf, sizeof buf), 0);
  assert_string_equal(buf, "/from/env.sock");
  /* The flag wins over the environment. */
  assert_int_equal(dockerhttp_socket_path("unix:///flag.sock", buf, sizeof buf), 0);
  assert_string_equal(buf, "/flag.sock");
  unsetenv("DOCKER_HOST");
  /* Not a unix socket, not absolute, too long for sun_path. */
  assert_int_equal(dockerhttp_socket_path("tcp://127.0.0.1:2375", buf, sizeof buf), -EINVAL);
  assert_int_equal(dockerhttp_socket_path("unix://rel.sock", buf, sizeof buf), -EINVAL);
  char lng[200] = "/";
  memset(lng + 1, 'a', 150);
  assert_int_equal(dockerhttp_socket_path(lng, buf, sizeof buf), -EINVAL);
  dockerhttp_host_error("tcp://127.0.0.1:2375", msg, sizeof msg);
  assert_string_equal(msg, "docker host 'tcp://127.0.0.1:2375': this version of drover talks to "
                           "the Docker engine over a unix socket only: give one like "
                           "unix:///var/run/docker.sock");
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_dockerhttp_socket_path),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
