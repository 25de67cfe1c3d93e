/* states.c - job state names and transitions (see states.h). */
#include <ctype.h>
#include <stddef.h>
#include <string.h>

#include "job/pb.h"
#include "job/states.h"

static const char *const names[JS_COUNT] = {
    [JS_UNSPECIFIED] = "unspecified", [JS_PENDING] = "pending",
    [JS_QUEUED] = "queued",           [JS_ASSIGNED] = "assigned",
    [JS_RUNNING] = "running",         [JS_SUCCEEDED] = "succeeded",
    [JS_FAILED] = "failed",           [JS_TIMED_OUT] = "timed_out",
    [JS_CANCELLED] = "cancelled",     [JS_LOST] = "lost",
};

static const int terminals[] = {JS_SUCCEEDED, JS_FAILED, JS_TIMED_OUT, JS_CANCELLED, JS_LOST};

const char *job_state_name(int state)
{
  return state >= 0 && state < JS_COUNT && names[state] ? names[state] : "unknown";
}

int job_state_parse(const char *s)
{
  for (int i = JS_PENDING; i < JS_COUNT; i++) {
    const char *n = names[i];
    size_t k = 0;
    for (; s[k] && n[k]; k++) {
      char a = s[k] == '-' ? '_' : (char)tolower((unsigned char)s[k]);
      if (a != n[k])
        break;
    }
    if (!s[k] && !n[k])
      return i;
  }
  return -1;
}

int job_state_terminal(int state)
{
  return state >= JS_SUCCEEDED && state <= JS_LOST;
}

int job_state_can(int from, int to)
{
  if (job_state_terminal(from) || from == to)
    return 0;
  switch (from) {
  case JS_UNSPECIFIED:
    return to == JS_QUEUED;
  case JS_QUEUED:
    return to == JS_ASSIGNED || to == JS_CANCELLED;
  case JS_ASSIGNED:
    return to == JS_RUNNING || to == JS_QUEUED || job_state_terminal(to);
  case JS_RUNNING:
    return to == JS_QUEUED || job_state_terminal(to);
  default:
    return 0;
  }
}

const int *job_state_terminals(size_t *n)
{
  *n = sizeof(terminals) / sizeof(terminals[0]);
  return terminals;
}
