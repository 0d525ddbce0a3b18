/*
 * test_webhook_buf.c: the shared memory budget of bounded buffers (buf.c):
 * what is charged, the reserve kept for small buffers, and giving back.
 */
#include "testutil.h"

#include "buf.h"

#include <string.h>

static void test_budget_reserve(void **state) {
  lfw_budget g;

  (void)state;
  lfw_budget_init(&g, 1000, 250, 100);
  /* A buffer that may grow large gets the first 750 bytes only. */
  assert_int_equal(lfw_budget_take(&g, 700, 5000), 0);
  assert_int_equal(lfw_budget_take(&g, 51, 5000), -1);
  assert_int_equal(lfw_budget_take(&g, 50, 5000), 0);
  /* A buffer bounded by `small` may use the reserve, up to the limit. */
  assert_int_equal(lfw_budget_take(&g, 250, 100), 0);
  assert_int_equal(lfw_budget_take(&g, 1, 100), -1);
  assert_int_equal(lfw_budget_used(&g), 1000);
  lfw_budget_give(&g, 300);
  assert_int_equal(lfw_budget_used(&g), 700);
  assert_int_equal(atomic_load(&g.peak), 1000);
  assert_int_equal(atomic_load(&g.refusals), 2);
}

static void test_buffer_charges(void **state) {
  lfw_budget g;
  lfw_buf b;
  char chunk[8192];

  (void)state;
  memset(chunk, 'x', sizeof chunk);
  lfw_budget_init(&g, 64 * 1024, 0, 0);
  lfw_buf_init_budget(&b, 1024 * 1024, &g, 16 * 1024);
  /* Within the allowance: nothing charged. */
  assert_int_equal(lfw_buf_append(&b, chunk, 8 * 1024), 0);
  assert_int_equal(lfw_budget_used(&g), 0);
  /* Beyond it: the capacity past the allowance, as it grows. */
  while (b.len < 40 * 1024)
    assert_int_equal(lfw_buf_append(&b, chunk, sizeof chunk), 0);
  assert_int_equal(lfw_budget_used(&g), b.cap - 16 * 1024);
  assert_int_equal(b.charged, b.cap - 16 * 1024);
  /* Past the budget: refused, contents kept, nothing more charged. */
  while (lfw_buf_append(&b, chunk, sizeof chunk) == 0)
    ;
  assert_true(b.refused);
  assert_true(b.overflow);
  assert_true(lfw_budget_used(&g) <= 64 * 1024);
  assert_int_equal(b.data[b.len], '\0');
  /* Freed: all given back. */
  lfw_buf_free(&b);
  assert_int_equal(lfw_budget_used(&g), 0);
}

/* The reserve is for buffers that can never grow large, not for large ones
 * while they are still small. */
static void test_reserve_by_bound(void **state) {
  lfw_budget g;
  lfw_buf big;
  lfw_buf small;

  (void)state;
  lfw_budget_init(&g, 1024, 1024, 512); /* All of it is reserve. */
  lfw_buf_init_budget(&big, 1024 * 1024, &g, 0);
  lfw_buf_init_budget(&small, 512, &g, 0);
  assert_int_equal(lfw_buf_append(&big, "x", 1), -1);
  assert_true(big.refused);
  assert_int_equal(lfw_buf_append(&small, "x", 1), 0);
  assert_true(lfw_budget_used(&g) > 0);
  lfw_buf_free(&big);
  lfw_buf_free(&small);
  assert_int_equal(lfw_budget_used(&g), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_budget_reserve),
      cmocka_unit_test(test_buffer_charges),
      cmocka_unit_test(test_reserve_by_bound),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
