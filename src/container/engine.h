/* engine.h - what an agent asks the Docker engine at start, synchronously
 * and with short time limits (the loop is not running jobs yet): does it
 * answer (the `docker` capability), and which containers did a previous
 * life of this agent leave behind (removed before any job runs). */
#ifndef DROVER_CONTAINER_ENGINE_H
#define DROVER_CONTAINER_ENGINE_H

/* 0 when the engine at host (as dockerhttp_new takes it) answers GET /_ping
 * within timeout_ms, else -1. */
int container_engine_ping(const char *host, long timeout_ms);
/* Removes (force, with their anonymous volumes) every container labelled
 * drover.agent=node. Returns how many were removed, or -1 when the engine
 * does not answer or refuses (nothing to do then: no engine, no leftovers).
 * Logs each removal. */
int container_engine_reap(const char *host, const char *node, long timeout_ms);

#endif
