/* fuzz_ddb_items.c - DynamoDB answers read by messages-svc (store.c): the
 * items of a Query ("Items") or a GetItem ("Item"), parsed as messages
 * (store_msg_from_item, store_msg_view_of) and as group rows
 * (store_group_from_item), plus the message sort key (keys.c).
 *
 * Input: the JSON answer as DynamoDB (or something pretending to be it)
 * sends it. Invariants: what parses is well-formed (canonical uuids, a sort
 * key that formats back to itself, strings inside their buffers), the two
 * message readers agree, and outputs stay untouched on failure. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cruddur/uuid.h"
#include "keys.h"
#include "store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_sk(const char *sk, int64_t us) {
  char back[KEYS_MSG_SK_LEN + 1], u[37];
  int64_t us2;
  if (keys_msg_sk_parse(sk, &us2, u) != 0 || us2 != us) abort();
  /* one spelling per key: the sort order of text is the order of time */
  if (keys_msg_sk(us, u, back) != 0 || strcmp(back, sk) != 0) abort();
}

static void check_item(const cJSON *item) {
  store_msg *m = malloc(sizeof *m);
  store_group *g = malloc(sizeof *g);
  if (m == NULL || g == NULL) {
    free(m);
    free(g);
    return;
  }
  memset(m, 0x33, sizeof *m);
  int mrc = store_msg_from_item(item, m);
  store_msg_view v;
  memset(&v, 0, sizeof v);
  int vrc = store_msg_view_of(item, &v);
  if (mrc == 0) {
    if (!uuid_valid(m->group)) abort();
    if (strnlen(m->sk, sizeof m->sk) != KEYS_MSG_SK_LEN) abort();
    if (strnlen(m->text, sizeof m->text) > STORE_TEXT_MAX ||
        strnlen(m->sender.handle, sizeof m->sender.handle) >= sizeof m->sender.handle ||
        strnlen(m->sender.display_name, sizeof m->sender.display_name) >=
            sizeof m->sender.display_name)
      abort();
    check_sk(m->sk, m->created_us);
    /* whatever the full reader accepts, the in-place reader accepts alike */
    if (vrc != 0 || v.created_us != m->created_us || strcmp(v.text, m->text) != 0 ||
        strcmp(v.user_handle, m->sender.handle) != 0)
      abort();
  } else if (mrc != -1) {
    abort();
  }
  if (vrc == 0) {
    if (!v.sk || !v.message_uuid || !v.text || !v.user_uuid || !v.user_handle ||
        !v.user_display_name)
      abort();
    check_sk(v.sk, v.created_us);
  } else if (vrc != -1 || v.sk != NULL) {
    abort();
  }

  memset(g, 0x44, sizeof *g);
  int grc = store_group_from_item(item, g);
  if (grc == 0) {
    if (!uuid_valid(g->group)) abort();
    if (strnlen(g->other.uuid, sizeof g->other.uuid) >= sizeof g->other.uuid ||
        strnlen(g->text, sizeof g->text) > STORE_TEXT_MAX)
      abort();
    if (g->last_sk[0] != '\0') check_sk(g->last_sk, g->last_us);
  } else if (grc != -1) {
    abort();
  }
  free(m);
  free(g);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 65536) return 0;
  cJSON *root = cJSON_ParseWithLength((const char *)data, size);
  if (root == NULL) {
    /* not JSON: still a candidate sort key */
    char sk[KEYS_MSG_SK_LEN + 2];
    if (size <= KEYS_MSG_SK_LEN) {
      memcpy(sk, data, size);
      sk[size] = '\0';
      int64_t us;
      if (keys_msg_sk_parse(sk, &us, NULL) == 0) check_sk(sk, us);
    }
    return 0;
  }
  const cJSON *items = cJSON_GetObjectItemCaseSensitive(root, "Items");
  const cJSON *list = cJSON_IsArray(items) ? items : NULL;
  const cJSON *it;
  cJSON_ArrayForEach(it, list) check_item(it);
  const cJSON *one = cJSON_GetObjectItemCaseSensitive(root, "Item");
  if (one) check_item(one);
  if (!items && !one) check_item(root);
  cJSON_Delete(root);
  return 0;
}
