/* store.h - the DynamoDB data layer of messages-svc (one table, see README).
 *
 * Every write is one single-item conditional write or an idempotent update:
 * no transactions (dynalite has none, and none are needed). All functions
 * take an absolute deadline on the monotonic clock (ts_mono_us) that bounds
 * the DynamoDB call, retries included. Return values:
 *   STORE_OK (0)     done
 *   STORE_NO (1)     the condition said no (item exists / missing / newer):
 *                    each function says what that means
 *   STORE_ERR (-1)   DynamoDB failed; *err says why (map with errmap_aws)
 * Outputs are set only on STORE_OK (or where a function says otherwise).
 */
#ifndef MSGS_STORE_H
#define MSGS_STORE_H

#include <stdint.h>
#include <cjson/cJSON.h>

#include "cruddur/aws.h"
#include "ddbpage.h"
#include "keys.h"

enum { STORE_OK = 0, STORE_NO = 1, STORE_ERR = -1 };

#define STORE_LSI "last-activity-index"
#define STORE_GSI "message-group-sk-index"
#define STORE_TEXT_MAX 4096         /* bytes: 1024 code points of up to 4 bytes */
#define STORE_REQ_TTL_S (24 * 3600) /* default idempotency window */

typedef struct store {
  aws_client *ddb;   /* reference */
  const char *table; /* reference */
} store;

typedef struct store_party {
  char uuid[37];
  char handle[33];
  char display_name[401];
} store_party;

typedef struct store_msg {
  char group[37];
  char message_uuid[37];
  char sk[KEYS_MSG_SK_LEN + 1];
  int64_t created_us;
  store_party sender;
  char text[STORE_TEXT_MAX + 1];
} store_msg;

/* One participant's view of a conversation (a group row). */
typedef struct store_group {
  char group[37];
  store_party other;
  char last_sk[KEYS_MSG_SK_LEN + 1]; /* "" before the first message */
  int64_t last_us;
  char text[STORE_TEXT_MAX + 1];
} store_group;

/* An idempotency record (REQ item). */
typedef struct store_req {
  char kind; /* 'm' CreateMessage, 'g' CreateMessageGroup */
  store_msg msg;
  store_party other; /* 'g': the recipient */
  int created;       /* 'g': this request created the group */
} store_req;

/* Fills m with a new message: fresh uuid, now as created time, its sort key.
 * Returns 0, or -1 when the text is too long or uuids fail. */
int store_msg_prepare(store_msg *m, const char *group, const store_party *sender, const char *text);

/* Consistent GetItem of owner's group row. STORE_OK fills *row; STORE_NO:
 * owner has no such group (not a member, or no group). */
int store_group_row_get(store *s, const char *owner, const char *group, int64_t deadline,
                        store_group *row, aws_error *err);

/* PutItem of the message with attribute_not_exists(pk). STORE_NO: an item
 * with that key is already there (an earlier attempt of the same request). */
int store_message_put(store *s, const store_msg *m, int64_t deadline, aws_error *err);

/* Makes owner's group row show m as its latest message, creating the row
 * (describing `other`) when it is missing: one PutItem of the whole row with
 * the condition attribute_not_exists(last_sk) OR last_sk < :sk. STORE_NO: a
 * newer (or the same) message is already shown, so the preview is unchanged;
 * `other`'s handle and name still replace the row's copy unless a message
 * newer than m wrote it (name_sk), one more UpdateItem. */
int store_group_touch(store *s, const char *owner, const store_party *other, const store_msg *m,
                      int64_t deadline, aws_error *err);

/* Stores m and makes it the latest of both group rows (sender's row
 * describing `other`, other's row describing the sender). other_fresh: the
 * caller's copy of `other` is current (it comes from the request), so it
 * replaces the one on the sender's row; 0 when it may be stale (membership
 * cache or an old row), so an existing row keeps its copy. Idempotent: safe
 * to repeat after a crash or for a retried request. */
int store_post(store *s, const store_msg *m, const store_party *other, int other_fresh,
               int64_t deadline, aws_error *err);

/* Claims the pair item for a and b with `candidate` as the group uuid.
 * STORE_OK: *created = 1 and winner = candidate, or *created = 0 and winner
 * = the group recorded by whoever claimed first (consistent read). */
int store_pair_claim(store *s, const char *a, const char *b, const char *candidate,
                     int64_t deadline, char winner[37], int *created, aws_error *err);

/* Records `mine` under (sender, request_id) for window_s seconds (> 0),
 * with the condition "no record, or only an expired one" (attribute_not_exists(pk)
 * OR expires_at <= now): an expired record counts as absent even before
 * DynamoDB's TTL deletes it (lazily; dynalite never). Concurrent claims of
 * one key still end with one record: the first put rewrites expires_at, so
 * the others' condition fails. STORE_OK: recorded now. STORE_NO: an earlier
 * request holds the key inside its window and *recorded is what it stored
 * (consistent read). */
int store_request_claim(store *s, const char *request_id, const store_req *mine, long window_s,
                        int64_t deadline, store_req *recorded, aws_error *err);

/* One page of messages, newest first when !forward. start_sk "" or NULL for
 * the first page. *resp is the Query answer (cJSON_Delete); its "Items"
 * array holds the items (read with store_msg_from_item). */
int store_messages_query(store *s, const char *group, int limit, const char *start_sk, int forward,
                         int64_t deadline, cJSON **resp, aws_error *err);

/* store_messages_query read without a cJSON tree (ddbpage.h): on STORE_OK
 * *page holds the answer's items (free with ddbp_page_free); on error
 * nothing is allocated. */
int store_messages_page(store *s, const char *group, int limit, const char *start_sk,
                        int forward, int64_t deadline, ddbp_page *page, aws_error *err);

/* One page of owner's group rows from the LSI, newest activity first.
 * start_sk/start_last_sk: the last row of the previous page, or NULL. */
int store_groups_query(store *s, const char *owner, int limit, const char *start_sk,
                       const char *start_last_sk, int64_t deadline, cJSON **resp, aws_error *err);

/* Watch reads (watch.c). Owner's group rows whose last_sk > after, oldest
 * activity first (consistent LSI Query), and a group's messages with
 * sk > after, oldest first (consistent Query); at most `limit` items each.
 * `after` may be a bare ts27 time: every key at or after that time is
 * greater. *resp as for the queries above. */
int store_groups_moved(store *s, const char *owner, const char *after, int limit,
                       int64_t deadline, cJSON **resp, aws_error *err);
/* The same rows read from the table itself: one page of owner's rows in
 * group order (Limit `limit` rows examined), only those with last_sk >
 * after. Each row is one item there, never missing while it moves (as an
 * LSI entry briefly is on dynalite, which deletes the old entry before it
 * puts the new one). start_sk: the previous page's LastEvaluatedKey sk, or
 * NULL. *resp as above. */
int store_groups_moved_table(store *s, const char *owner, const char *after, const char *start_sk,
                             int limit, int64_t deadline, cJSON **resp, aws_error *err);
int store_messages_after(store *s, const char *group, const char *after, int limit,
                         int64_t deadline, cJSON **resp, aws_error *err);

/* Parses a message item. Returns 0, or -1 when an attribute is missing or
 * malformed. */
int store_msg_from_item(const cJSON *item, store_msg *out);

/* A message item read in place: pointers into the cJSON item, valid while
 * it lives (the list handlers copy straight into the response). */
typedef struct store_msg_view {
  const char *sk, *message_uuid, *text;
  const char *user_uuid, *user_handle, *user_display_name;
  int64_t created_us;
} store_msg_view;

/* Checks a message item's attributes and fills *v. Returns 0, or -1 when an
 * attribute is missing or malformed (*v untouched). */
int store_msg_view_of(const cJSON *item, store_msg_view *v);

/* store_msg_view_of for an item of a ddbp_page: pointers into the page. */
int store_msg_view_of_page(const ddbp_item *item, store_msg_view *v);

/* Parses a group row item. Returns 0, or -1 when malformed. */
int store_group_from_item(const cJSON *item, store_group *out);

/* DescribeTable: STORE_OK when the table exists (health check). */
int store_describe(store *s, int64_t deadline, aws_error *err);

/* Milliseconds left until deadline (0 when passed). */
int64_t store_budget_ms(int64_t deadline);

/* 1 when err is ConditionalCheckFailedException. */
int store_is_condfail(const aws_error *err);

/* Small helpers shared with the tools: item[name].S or NULL. */
const char *store_attr_s(const cJSON *item, const char *name);
/* Adds {"name": {"S": value}} to obj; returns 0 or -1 on out-of-memory. */
int store_add_s(cJSON *obj, const char *name, const char *value);

#endif
