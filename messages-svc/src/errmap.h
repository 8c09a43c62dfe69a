/* errmap.h - the one place where DynamoDB failures become gRPC statuses. */
#ifndef MSGS_ERRMAP_H
#define MSGS_ERRMAP_H

#include <grpc/status.h>

#include "cruddur/aws.h"

/* Maps a failed aws_call to a status and a static reason (no secrets, no
 * message text). `deadline_passed` is 1 when the caller's own deadline has
 * run out (then a timeout is DEADLINE_EXCEEDED rather than UNAVAILABLE).
 *   unreachable, timeout       UNAVAILABLE (or DEADLINE_EXCEEDED)
 *   throttled, NOMEM           RESOURCE_EXHAUSTED
 *   ResourceNotFoundException  UNAVAILABLE ("table missing: run schema-load")
 *   credentials refused        UNAVAILABLE
 *   anything else              INTERNAL (a request we built wrong) */
grpc_status_code errmap_aws(const aws_error *err, int deadline_passed, const char **why);

#endif
