/*
 * timefmt: RFC 3339 timestamps to and from microseconds since the epoch.
 * Written out by hand instead of strptime/timegm: those depend on the locale
 * and TZ, accept more than RFC 3339, and timegm is not in C11.
 */
#include "text.h"

#include <stdio.h>
#include <string.h>

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar
 * (Howard Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int m, int d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d) {
  z += 719468;
  int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  int64_t doe = z - era * 146097;
  int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  int64_t mp = (5 * doy + 2) / 153;
  *d = (int)(doy - (153 * mp + 2) / 5 + 1);
  *m = (int)(mp < 10 ? mp + 3 : mp - 9);
  *y = yoe + era * 400 + (*m <= 2);
}

static int days_in_month(int64_t y, int m) {
  static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return (m == 2 && leap) ? 29 : days[m - 1];
}

/* Reads exactly `n` digits at s[*i]; false if any is not a digit. */
static bool digits(const char *s, size_t len, size_t *i, int n, int *out) {
  int v = 0;
  if (*i + (size_t)n > len) {
    return false;
  }
  for (int k = 0; k < n; k++) {
    char c = s[*i + (size_t)k];
    if (c < '0' || c > '9') {
      return false;
    }
    v = v * 10 + (c - '0');
  }
  *i += (size_t)n;
  *out = v;
  return true;
}

static bool expect(const char *s, size_t len, size_t *i, char c) {
  if (*i < len && s[*i] == c) {
    (*i)++;
    return true;
  }
  return false;
}

int lf_time_parse(const char *text, size_t len, int64_t *out_us, lf_error *err) {
  size_t i = 0;
  int y, mo, d, h, mi, sec, oh = 0, om = 0;
  int64_t frac_us = 0;
  int sign = 0;

  if (text == NULL || len > 40) {
    return lf__fail(err, LF_EINVAL, "timestamp missing or longer than 40 bytes");
  }
  if (!digits(text, len, &i, 4, &y) || !expect(text, len, &i, '-') ||
      !digits(text, len, &i, 2, &mo) || !expect(text, len, &i, '-') ||
      !digits(text, len, &i, 2, &d) || !expect(text, len, &i, 'T') ||
      !digits(text, len, &i, 2, &h) || !expect(text, len, &i, ':') ||
      !digits(text, len, &i, 2, &mi) || !expect(text, len, &i, ':') ||
      !digits(text, len, &i, 2, &sec)) {
    goto bad;
  }
  if (expect(text, len, &i, '.')) {
    int n = 0;
    int64_t scale = 100000;
    while (i < len && text[i] >= '0' && text[i] <= '9') {
      if (n < 6) {
        frac_us += (text[i] - '0') * scale;
        scale /= 10;
      }
      n++;
      i++;
    }
    if (n == 0 || n > 9) {
      goto bad;
    }
  }
  if (expect(text, len, &i, 'Z')) {
    sign = 0;
  } else if (i < len && (text[i] == '+' || text[i] == '-')) {
    sign = text[i] == '+' ? 1 : -1;
    i++;
    if (!digits(text, len, &i, 2, &oh) || !expect(text, len, &i, ':') ||
        !digits(text, len, &i, 2, &om) || oh > 23 || om > 59) {
      goto bad;
    }
  } else {
    goto bad;
  }
  if (i != len || y < 1 || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 ||
      mi > 59 || sec > 59) {
    goto bad;
  }

  int64_t secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec;
  secs -= sign * (oh * 3600 + om * 60);
  *out_us = secs * 1000000 + frac_us;
  return LF_OK;

bad:
  return lf__fail(err, LF_EINVAL,
                  "not an RFC 3339 timestamp (want 2006-01-02T15:04:05[.fraction]Z)");
}

int lf_time_format(int64_t us, char *buf, size_t size) {
  /* Bounds keep the arithmetic below far from overflow: years 1..9999. */
  const int64_t min_us = -62135596800LL * 1000000;          /* 0001-01-01 */
  const int64_t max_us = 253402300799LL * 1000000 + 999999; /* 9999-12-31 */
  if (us == LF_TIME_NONE || us < min_us || us > max_us || size < 28) {
    return LF_EINVAL;
  }
  int64_t secs = us / 1000000;
  int64_t rem = us % 1000000;
  if (rem < 0) {
    rem += 1000000;
    secs -= 1;
  }
  int64_t days = secs / 86400;
  int64_t sod = secs % 86400;
  if (sod < 0) {
    sod += 86400;
    days -= 1;
  }
  int64_t y;
  int m, d;
  civil_from_days(days, &y, &m, &d);
  snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", (int)y, m, d, (int)(sod / 3600),
           (int)(sod / 60 % 60), (int)(sod % 60), (int)rem);
  return LF_OK;
}
