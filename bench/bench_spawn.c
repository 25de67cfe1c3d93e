/* bench_spawn.c - times N runs of a command: fork, execvp, wait4, one after
 * the other, output to /dev/null. Prints the median, 90th percentile and
 * mean wall time per run in microseconds, one "key=value" per word:
 *   bench_spawn 200 /bin/true
 *   bench_spawn 200 build/drover run -- true
 * The same harness times both sides of a comparison, so its own cost cancels. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int64_t mono_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp_i64(const void *a, const void *b)
{
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
  if (argc < 3) {
    fprintf(stderr, "usage: bench_spawn N CMD [ARGS...]\n");
    return 2;
  }
  int n = atoi(argv[1]);
  if (n < 1)
    n = 1;
  int64_t *t = calloc((size_t)n, sizeof(*t));
  int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
  int failures = 0;
  for (int i = 0; i < n; i++) {
    int64_t start = mono_ns();
    pid_t pid = fork();
    if (pid < 0) {
      perror("fork");
      return 1;
    }
    if (pid == 0) {
      dup2(devnull, 0);
      dup2(devnull, 1);
      dup2(devnull, 2);
      execvp(argv[2], argv + 2);
      _exit(127);
    }
    int status;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) < 0) {
      perror("wait4");
      return 1;
    }
    t[i] = mono_ns() - start;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
      failures++;
  }
  qsort(t, (size_t)n, sizeof(*t), cmp_i64);
  double sum = 0;
  for (int i = 0; i < n; i++)
    sum += (double)t[i];
  printf("runs=%d median_us=%.0f p90_us=%.0f p95_us=%.0f mean_us=%.0f failures=%d\n", n,
         (double)t[n / 2] / 1e3, (double)t[(n * 9) / 10] / 1e3, (double)t[(n * 19) / 20] / 1e3,
         sum / n / 1e3, failures);
  free(t);
  return failures ? 1 : 0;
}
