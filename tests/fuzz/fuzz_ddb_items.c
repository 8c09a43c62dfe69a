/* fuzz_ddb_items.c - DynamoDB answers read by messages-svc (store.c): the
 * items of a Query ("Items") or a GetItem ("Item"), parsed as messages
 * (store_msg_from_item, store_msg_view_of) and as group rows
 * (store_group_from_item), plus the message sort key (keys.c).
 *
 * The one-pass page reader ddbpage.c (ListMessages reads its Query pages
 * with it) is checked differentially against cJSON: whatever it accepts,
 * cJSON accepts, with the same items, the same string attributes and the
 * same message views; and every object cJSON reads, printed back by cJSON,
 * it accepts too (unless nested past DDBP_DEPTH_MAX).
 *
 * Input: the JSON answer as DynamoDB (or something pretending to be it)
 * sends it. Invariants: what parses is well-formed (canonical uuids, a sort
 * key that formats back to itself, strings inside their buffers), the
 * message readers agree, and outputs stay untouched on failure. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cruddur/uuid.h"
#include "ddbpage.h"
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

static int same_str(const char *a, const char *b) {
  return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

static void same_view(const store_msg_view *a, const store_msg_view *b) {
  if (!same_str(a->sk, b->sk) || !same_str(a->message_uuid, b->message_uuid) ||
      !same_str(a->text, b->text) || !same_str(a->user_uuid, b->user_uuid) ||
      !same_str(a->user_handle, b->user_handle) ||
      !same_str(a->user_display_name, b->user_display_name) || a->created_us != b->created_us)
    abort();
}

/* The page reader's item reads like cJSON's: every attribute either names. */
static void same_item(const cJSON *c, const ddbp_item *d) {
  for (const ddbp_attr *a = d->attrs; a; a = a->next)
    if (!same_str(ddbp_attr_s(d, a->name), store_attr_s(c, a->name))) abort();
  if (cJSON_IsObject(c)) {
    const cJSON *ch;
    cJSON_ArrayForEach(ch, c) {
      if (!same_str(ddbp_attr_s(d, ch->string), store_attr_s(c, ch->string))) abort();
    }
  } else if (d->attrs != NULL) {
    abort();
  }
  store_msg_view vc, vd;
  memset(&vc, 0, sizeof vc);
  memset(&vd, 0, sizeof vd);
  int rc = store_msg_view_of(c, &vc), rd = store_msg_view_of_page(d, &vd);
  if (rc != rd) abort();
  same_view(&vc, &vd);
}

static void same_page(const cJSON *root, const ddbp_page *pg) {
  if (!cJSON_IsObject(root)) abort();
  const cJSON *items = cJSON_GetObjectItemCaseSensitive(root, "Items");
  if (items == NULL) {
    if (pg->n != 0 || pg->items != NULL) abort();
    return;
  }
  if (!cJSON_IsArray(items) || (size_t)cJSON_GetArraySize(items) != pg->n) abort();
  const ddbp_item *d = pg->items;
  const cJSON *c;
  cJSON_ArrayForEach(c, items) {
    if (d == NULL) abort();
    same_item(c, d);
    d = d->next;
  }
  if (d != NULL) abort();
}

static int depth(const cJSON *j) {
  int most = 0;
  const cJSON *ch;
  cJSON_ArrayForEach(ch, j) {
    int k = depth(ch);
    if (k > most) most = k;
  }
  return (cJSON_IsObject(j) || cJSON_IsArray(j)) + most;
}

static void check_page_reader(const uint8_t *data, size_t size, const cJSON *root) {
  ddbp_page pg;
  if (ddbp_parse((const char *)data, size, &pg) == DDBP_OK) {
    if (root == NULL) abort(); /* never more lenient than cJSON */
    same_page(root, &pg);
    ddbp_page_free(&pg);
  }
  if (!cJSON_IsObject(root) || depth(root) > DDBP_DEPTH_MAX) return;
  const cJSON *items = cJSON_GetObjectItemCaseSensitive(root, "Items");
  if (items && !cJSON_IsArray(items)) return;
  char *back = cJSON_PrintUnformatted(root);
  if (back == NULL) return;
  if (ddbp_parse(back, strlen(back), &pg) != DDBP_OK) abort();
  same_page(root, &pg);
  ddbp_page_free(&pg);
  free(back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 65536) return 0;
  cJSON *root = cJSON_ParseWithLength((const char *)data, size);
  check_page_reader(data, size, root);
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
