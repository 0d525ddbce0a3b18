/* Corpus replay for compilers without libFuzzer: runs every file named on the
 * command line, or every file in every directory named, through the target. */
#include "fuzz.h"

#include <dirent.h>
#include <sys/stat.h>

/* Inputs are read whole; the cap stays above every parser's own bound so
 * the bounds themselves are exercised. */
#define REPLAY_MAX (8 * 1024 * 1024)

static int run_file(const char *path) {
  FILE *f = fopen(path, "rb");
  uint8_t *buf = NULL;
  size_t n;
  int rc = -1;
  if (f == NULL) {
    fprintf(stderr, "replay: cannot open %s\n", path);
    return -1;
  }
  buf = malloc(REPLAY_MAX);
  if (buf != NULL) {
    n = fread(buf, 1, REPLAY_MAX, f);
    LLVMFuzzerTestOneInput(buf, n);
    rc = 0;
  }
  free(buf);
  fclose(f);
  return rc;
}

int main(int argc, char **argv) {
  size_t files = 0;
  for (int i = 1; i < argc; i++) {
    struct stat st;
    if (stat(argv[i], &st) != 0) {
      fprintf(stderr, "replay: %s does not exist\n", argv[i]);
      return 1;
    }
    if (!S_ISDIR(st.st_mode)) {
      if (run_file(argv[i]) != 0) {
        return 1;
      }
      files++;
      continue;
    }
    DIR *d = opendir(argv[i]);
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL) {
      char path[4096];
      if (e->d_name[0] == '.') {
        continue;
      }
      snprintf(path, sizeof(path), "%s/%s", argv[i], e->d_name);
      if (run_file(path) != 0) {
        closedir(d);
        return 1;
      }
      files++;
    }
    if (d != NULL) {
      closedir(d);
    }
  }
  printf("replayed %zu inputs\n", files);
  return files > 0 ? 0 : 1;
}
