/* pb.h - short names for the drover.v1 protobuf-c types and enums that the
 * coordinator, the agent and the CLI share (protoc-c's own names are long). */
#ifndef DROVER_JOB_PB_H
#define DROVER_JOB_PB_H

#include "drover/v1/agent.pb-c.h"
#include "drover/v1/jobs.pb-c.h"

typedef Drover__V1__JobSpec pb_JobSpec;
typedef Drover__V1__JobResult pb_JobResult;
typedef Drover__V1__Job pb_Job;
typedef Drover__V1__JobEvent pb_JobEvent;
typedef Drover__V1__Progress pb_Progress;
typedef Drover__V1__EnvVar pb_EnvVar;
typedef Drover__V1__LogEntry pb_LogEntry;
typedef Drover__V1__LogBatch pb_LogBatch;
typedef Drover__V1__LogsResponse pb_LogsResponse;
typedef Drover__V1__Node pb_Node;
typedef Drover__V1__NodeResources pb_NodeResources;
typedef Drover__V1__Heartbeat pb_Heartbeat;
typedef Drover__V1__Register pb_Register;
typedef Drover__V1__Welcome pb_Welcome;
typedef Drover__V1__HeldJob pb_HeldJob;
typedef Drover__V1__HeldJobState pb_HeldJobState;
typedef Drover__V1__AgentMessage pb_AgentMessage;
typedef Drover__V1__CoordinatorMessage pb_CoordinatorMessage;

/* drover.v1.JobState */
enum {
  JS_UNSPECIFIED = DROVER__V1__JOB_STATE__JOB_STATE_UNSPECIFIED,
  JS_PENDING = DROVER__V1__JOB_STATE__JOB_STATE_PENDING,
  JS_QUEUED = DROVER__V1__JOB_STATE__JOB_STATE_QUEUED,
  JS_ASSIGNED = DROVER__V1__JOB_STATE__JOB_STATE_ASSIGNED,
  JS_RUNNING = DROVER__V1__JOB_STATE__JOB_STATE_RUNNING,
  JS_SUCCEEDED = DROVER__V1__JOB_STATE__JOB_STATE_SUCCEEDED,
  JS_FAILED = DROVER__V1__JOB_STATE__JOB_STATE_FAILED,
  JS_TIMED_OUT = DROVER__V1__JOB_STATE__JOB_STATE_TIMED_OUT,
  JS_CANCELLED = DROVER__V1__JOB_STATE__JOB_STATE_CANCELLED,
  JS_LOST = DROVER__V1__JOB_STATE__JOB_STATE_LOST,
  JS_COUNT
};

/* drover.v1.NodeState */
enum {
  NS_UNSPECIFIED = DROVER__V1__NODE_STATE__NODE_STATE_UNSPECIFIED,
  NS_READY = DROVER__V1__NODE_STATE__NODE_STATE_READY,
  NS_DRAINING = DROVER__V1__NODE_STATE__NODE_STATE_DRAINING,
  NS_LOST = DROVER__V1__NODE_STATE__NODE_STATE_LOST,
  NS_DOWN = DROVER__V1__NODE_STATE__NODE_STATE_DOWN,
};

/* drover.v1.LogStream */
enum {
  LS_STDOUT = DROVER__V1__LOG_STREAM__LOG_STREAM_STDOUT,
  LS_STDERR = DROVER__V1__LOG_STREAM__LOG_STREAM_STDERR,
  LS_SYSTEM = DROVER__V1__LOG_STREAM__LOG_STREAM_SYSTEM,
};

#endif
