/* dockerjson.h - the Docker engine's JSON, both ways: the body that
 * creates a job's container (POST /containers/create), and the messages of
 * the engine's error bodies. Pure: no I/O, so it is unit-tested without an
 * engine (tests/unit/test_dockerjson.c). */
#ifndef DROVER_CONTAINER_DOCKERJSON_H
#define DROVER_CONTAINER_DOCKERJSON_H

#include "job/job.h"

/* The create body for job j (kind JOB_CONTAINER): Image; Entrypoint
 * ["/bin/sh", "-c"] and Cmd [command] for a shell line, Cmd argv for argv,
 * neither for the image's own command; Env (the job's, then DROVER_JOB_ID
 * and DROVER_ATTEMPT); WorkingDir; Labels drover.job=<id> and, when node is
 * not NULL or "", drover.agent=<node>; stdout and stderr attached, no TTY, no
 * stdin; and the job's resources and isolation in HostConfig
 * (docs/containers.md has the table). A heap string, compact JSON. */
char *dockerjson_create_body(const struct job *j, const char *node);
/* The "message" of an engine's error body, else the body (its first 200
 * bytes), else "HTTP status N"; one line. A heap string. */
char *dockerjson_message(const char *body, long status);
/* s percent-encoded for a URL's query (all but A-Z a-z 0-9 - . _ ~). A heap string. */
char *dockerjson_query_escape(const char *s);

#endif
