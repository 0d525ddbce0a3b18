/*
 * test_webhook_prune.c: the pruning scanner (webhook/src/prune.c) against
 * jansson, on the decision vectors and on many mutations of them.
 *
 * For every input: when the scanner calls it invalid, jansson must refuse the
 * whole body too; when the scanner accepts it, jansson must accept the whole
 * body (or refuse it only for a duplicate key or an oversized number in a
 * part that was dropped, the documented exceptions), and the library must
 * read the same request from the projection as from the whole body.
 */
#include "testutil.h"

#include "prune.h"
#include "prune_check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint64_t next_rand(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

static prune_check_stats stats;

static void check(const char *in, size_t len) {
  const char *why = prune_check(in, len, &stats);

  if (why != NULL)
    fail_msg("%s: %.*s", why, (int)len, in);
}

/* Bytes that make interesting mutations in JSON text. */
static const char alphabet[] =
    "{}[]\",:\\u0123456789-+.eEtfnrl \t\n\xc3\xa9\xed\xa0\x80\xf4\x90\x00/";

static void mutate(char *buf, size_t *len, size_t cap) {
  size_t pos = *len > 0 ? next_rand() % *len : 0;
  char c = alphabet[next_rand() % (sizeof alphabet - 1)];

  switch (next_rand() % 4) {
  case 0: /* Replace. */
    if (*len > 0)
      buf[pos] = c;
    break;
  case 1: /* Insert. */
    if (*len + 1 < cap) {
      memmove(buf + pos + 1, buf + pos, *len - pos);
      buf[pos] = c;
      (*len)++;
    }
    break;
  case 2: /* Delete. */
    if (*len > 0) {
      memmove(buf + pos, buf + pos + 1, *len - pos - 1);
      (*len)--;
    }
    break;
  default: /* Truncate. */
    *len = pos;
    break;
  }
}

static void test_vectors_and_mutations(void **state) {
  json_t *root = lft_load_vectors("decisions.json");
  const json_t *cases = json_object_get(root, "cases");
  size_t i;
  int m;

  (void)state;
  for (i = 0; i < json_array_size(cases); i++) {
    json_t *review = lft_review(json_object_get(json_array_get(cases, i), "request"));
    char *text = json_dumps(review, JSON_COMPACT);
    char *pretty = json_dumps(review, JSON_INDENT(2) | JSON_ENSURE_ASCII);
    size_t len = strlen(text);
    size_t cap = len + 64;
    char *buf = malloc(cap);

    assert_non_null(buf);
    check(text, len);
    check(pretty, strlen(pretty));
    for (m = 0; m < 300; m++) {
      size_t n = len;
      int k;
      int edits = 1 + (int)(next_rand() % 3);

      memcpy(buf, text, len);
      for (k = 0; k < edits; k++)
        mutate(buf, &n, cap);
      check(buf, n);
    }
    free(buf);
    free(pretty);
    free(text);
    json_decref(review);
  }
  print_message("%d inputs checked, %d accepted\n", stats.checked, stats.accepted);
  json_decref(root);
}

static void expect_projection(const char *in, const char *want) {
  lfw_buf out;

  lfw_buf_init(&out, strlen(in));
  assert_int_equal(lfw_prune_review(in, strlen(in), &out), LFW_PRUNE_OK);
  assert_string_equal(out.data, want);
  lfw_buf_free(&out);
}

static void expect_invalid(const char *in, size_t len) {
  lfw_buf out;

  lfw_buf_init(&out, len);
  assert_int_equal(lfw_prune_review(in, len, &out), LFW_PRUNE_INVALID);
  lfw_buf_free(&out);
}

/* A dropped part may nest as deep as LFW_PRUNE_MAX_DEPTH, without recursion;
 * one level more is refused. */
static void test_depth(void **state) {
  const size_t total = LFW_PRUNE_MAX_DEPTH;
  /* {"x": then arrays, so that `total` levels are open at the innermost. */
  const size_t arrays = total - 1;
  size_t len = 5 + 2 * arrays + 1 + 1;
  char *in = malloc(len + 2);
  lfw_buf out;
  size_t i;

  (void)state;
  assert_non_null(in);
  memcpy(in, "{\"x\":", 5);
  for (i = 0; i < arrays; i++)
    in[5 + i] = '[';
  in[5 + arrays] = '1';
  for (i = 0; i < arrays; i++)
    in[6 + arrays + i] = ']';
  in[6 + 2 * arrays] = '}';
  lfw_buf_init(&out, len);
  assert_int_equal(lfw_prune_review(in, len, &out), LFW_PRUNE_OK);
  assert_string_equal(out.data, "{}");
  lfw_buf_free(&out);
  /* One level more. */
  memmove(in + 6, in + 5, len - 5);
  in[5] = '[';
  in[len] = ']';
  in[len + 1] = '}';
  lfw_buf_init(&out, len + 2);
  assert_int_equal(lfw_prune_review(in, len + 2, &out), LFW_PRUNE_INVALID);
  lfw_buf_free(&out);
  free(in);
}

static void test_projection(void **state) {
  (void)state;
  expect_projection(
      "{ \"apiVersion\": \"v\", \"x\": [1, {\"y\": null}], \"request\": {\"uid\": \"u\", "
      "\"object\": {\"spec\": {\"a\": 1}, \"metadata\": {\"name\": \"n\", \"namespace\": \"ns\", "
      "\"annotations\": {\"other\": \"o\", \"leasefence.io/lease\": \"l\", "
      "\"leasefence.io\\/stamp\": 5}}}, \"oldObject\": null}, \"kind\": \"K\"}",
      "{\"apiVersion\":\"v\",\"request\":{\"uid\":\"u\",\"object\":{\"metadata\":{\"namespace\":"
      "\"ns\",\"annotations\":{\"leasefence.io/lease\":\"l\",\"leasefence.io\\/stamp\":5}}},"
      "\"oldObject\":null},\"kind\":\"K\"}");
  /* A key spelled with escapes is the same key. */
  expect_projection("{\"re\\u0071uest\":{\"object\":{\"metadata\":{}}}}",
                    "{\"re\\u0071uest\":{\"object\":{\"metadata\":{}}}}");
  /* Duplicates of kept members stay, for jansson to refuse. */
  expect_projection("{\"kind\":1,\"kind\":2}", "{\"kind\":1,\"kind\":2}");
  /* "\u0000" is legal JSON, in keys too; jansson sees only kept parts. */
  expect_projection("{\"x\":{\"a\\u0000\":\"\\u0000\"},\"kind\":\"K\\u0000\"}",
                    "{\"kind\":\"K\\u0000\"}");
  /* Of userInfo.extra only the API server's own keys are kept. */
  expect_projection("{\"request\":{\"userInfo\":{\"username\":\"u\",\"extra\":{"
                    "\"authentication.kubernetes.io/pod-name\":[\"p\"],\"x\\u0000\":[],"
                    "\"example.com/a\":[\"b\"]}}}}",
                    "{\"request\":{\"userInfo\":{\"username\":\"u\",\"extra\":{"
                    "\"authentication.kubernetes.io/pod-name\":[\"p\"]}}}}");
  expect_projection("{\"request\":{\"userInfo\":{\"extra\":[1]}}}",
                    "{\"request\":{\"userInfo\":{\"extra\":[1]}}}");
  /* Numbers of any size. */
  expect_projection("{\"x\":[1e400,123456789012345678901234567890,-0.0E-0]}", "{}");
  expect_invalid("{\"a\":\"\\udc00\"}", 13);
  expect_invalid("{\"a\":\"\xed\xa0\x80\"}", 9);
  expect_invalid("{\"a\":\"\xc0\xaf\"}", 8);
  expect_invalid("{\"a\":01}", 8);
  expect_invalid("{\"a\":1,}", 8);
  expect_invalid("{\"a\":[1,]}", 10);
  expect_invalid("{\"a\":1} x", 9);
  expect_invalid("{\"a\":tru}", 9);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_projection),
      cmocka_unit_test(test_depth),
      cmocka_unit_test(test_vectors_and_mutations),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
