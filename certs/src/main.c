/*
 * main.c: the leasefence-certs command line.
 *
 * Parses one subcommand and its flags, calls certgen, and turns the result
 * into an exit code: 0 success, 2 the user must change something (bad flag,
 * missing flag, bad value, missing or wrong CA), 1 the machine failed (I/O,
 * libcrypto). Every failure is one line on stderr. Nothing here touches a
 * private key.
 */
#include "certgen.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef LFC_VERSION
#define LFC_VERSION "unknown"
#endif

#define PROG "leasefence-certs"

enum { EXIT_USAGE = 2 };

/* Every flag of every command; each command accepts a subset. */
typedef enum flag_id {
  F_DIR,
  F_SERVICE,
  F_NAMESPACE,
  F_DNS,
  F_IP,
  F_DAYS,
  F_CA_DAYS,
  F_KEY_TYPE,
  F_CN,
  F_ORG,
  F_OUT_PREFIX,
  F_FORCE,
  F_HELP,
  F_COUNT
} flag_id;

typedef struct flag_spec {
  const char *name;
  const char *metavar; /* NULL: the flag takes no value. */
} flag_spec;

static const flag_spec flag_specs[F_COUNT] = {
    [F_DIR] = {"dir", "DIR"},
    [F_SERVICE] = {"service", "NAME"},
    [F_NAMESPACE] = {"namespace", "NS"},
    [F_DNS] = {"dns", "NAME"},
    [F_IP] = {"ip", "ADDR"},
    [F_DAYS] = {"days", "N"},
    [F_CA_DAYS] = {"ca-days", "N"},
    [F_KEY_TYPE] = {"key-type", "TYPE"},
    [F_CN] = {"cn", "NAME"},
    [F_ORG] = {"org", "ORG"},
    [F_OUT_PREFIX] = {"out-prefix", "PREFIX"},
    [F_FORCE] = {"force", NULL},
    [F_HELP] = {"help", NULL},
};

/* One line of a command's --help: the flag and what it does, default
 * included, so the help text is the one place defaults are spelled out. */
typedef struct flag_doc {
  flag_id id;
  const char *help;
} flag_doc;

/* The parsed command line. The strings point into argv. */
typedef struct args {
  const char *dir;
  const char *service;
  const char *namespace_;
  const char *cn;
  const char *out_prefix;
  const char *dns[LFC_DNS_MAX];
  size_t n_dns;
  const char *ips[LFC_IP_MAX];
  size_t n_ips;
  const char *orgs[LFC_ORG_MAX];
  size_t n_orgs;
  int days;    /* 0: the command's default. */
  int ca_days; /* 0: LFC_CA_DAYS_DEFAULT. */
  lfc_key_type key_type;
  int force;
  unsigned seen; /* Bit per flag_id, to refuse a single-valued flag twice. */
} args;

typedef struct command {
  const char *name;
  const char *synopsis;
  const char *about;
  int (*run)(const args *a);
  const flag_doc *flags; /* Ends with F_HELP. */
} command;

/* ------------------------------------------------------------------------ */
/* Running the commands                                                      */

/* Maps a certgen result to the exit code and prints its message. */
static int fail(const char *cmd, int rc, const lfc_error *err) {
  fprintf(stderr, PROG " %s: %s\n", cmd, err->text);
  if (rc == LFC_EINVAL || rc == LFC_EINPUT || rc == LFC_EEXIST) {
    return EXIT_USAGE;
  }
  return EXIT_FAILURE;
}

static const char *dir_of(const args *a) {
  return a->dir != NULL ? a->dir : ".";
}

static void fill_serving(const args *a, lfc_serving_opts *o) {
  memset(o, 0, sizeof *o);
  o->dir = a->dir;
  o->service = a->service;
  o->namespace_ = a->namespace_;
  o->dns = a->dns;
  o->n_dns = a->n_dns;
  o->ips = a->ips;
  o->n_ips = a->n_ips;
  o->cn = a->cn;
  o->orgs = a->orgs;
  o->n_orgs = a->n_orgs;
  o->days = a->days;
  o->key_type = a->key_type;
  o->now = time(NULL);
}

static int run_ca(const args *a) {
  lfc_ca_opts o;
  lfc_error err;
  int rc;

  memset(&o, 0, sizeof o);
  o.dir = a->dir;
  o.cn = a->cn;
  o.orgs = a->orgs;
  o.n_orgs = a->n_orgs;
  o.days = a->days;
  o.key_type = a->key_type;
  o.force = a->force;
  o.now = time(NULL);
  rc = lfc_ca_create(&o, &err);
  if (rc != LFC_OK) {
    return fail("ca", rc, &err);
  }
  printf("wrote %s/%s and %s/%s\n", dir_of(a), LFC_CA_KEY_FILE, dir_of(a), LFC_CA_CERT_FILE);
  return EXIT_SUCCESS;
}

/* The serving step, shared by `serving` and `all`; cmd names the command
 * in messages. */
static int make_serving(const args *a, const char *cmd) {
  lfc_serving_opts o;
  lfc_error err;
  int rc;

  fill_serving(a, &o);
  rc = lfc_serving_create(&o, &err);
  if (rc != LFC_OK) {
    return fail(cmd, rc, &err);
  }
  printf("wrote %s/%s and %s/%s\n", dir_of(a), LFC_SERVING_KEY_FILE, dir_of(a),
         LFC_SERVING_CERT_FILE);
  return EXIT_SUCCESS;
}

static int run_serving(const args *a) {
  return make_serving(a, "serving");
}

static int run_rotate(const args *a) {
  lfc_serving_opts o;
  lfc_error err;
  int rc;

  fill_serving(a, &o);
  rc = lfc_serving_rotate(&o, &err);
  if (rc != LFC_OK) {
    return fail("rotate", rc, &err);
  }
  printf("rotated %s/%s and %s/%s\n", dir_of(a), LFC_SERVING_KEY_FILE, dir_of(a),
         LFC_SERVING_CERT_FILE);
  return EXIT_SUCCESS;
}

static int run_client(const args *a) {
  lfc_client_opts o;
  lfc_error err;
  const char *prefix = a->out_prefix != NULL ? a->out_prefix : LFC_CLIENT_PREFIX_DEFAULT;
  int rc;

  memset(&o, 0, sizeof o);
  o.dir = a->dir;
  o.out_prefix = a->out_prefix;
  o.cn = a->cn;
  o.orgs = a->orgs;
  o.n_orgs = a->n_orgs;
  o.days = a->days;
  o.key_type = a->key_type;
  o.now = time(NULL);
  rc = lfc_client_create(&o, &err);
  if (rc != LFC_OK) {
    return fail("client", rc, &err);
  }
  printf("wrote %s/%s.key and %s/%s.crt\n", dir_of(a), prefix, dir_of(a), prefix);
  return EXIT_SUCCESS;
}

static int run_ca_bundle(const args *a) {
  lfc_error err;
  char *b64 = NULL;
  int rc;

  rc = lfc_ca_bundle(a->dir, &b64, &err);
  if (rc != LFC_OK) {
    return fail("ca-bundle", rc, &err);
  }
  rc = EXIT_SUCCESS;
  if (printf("%s\n", b64) < 0 || fflush(stdout) != 0) {
    fprintf(stderr, PROG " ca-bundle: writing to stdout failed: %s\n", strerror(errno));
    rc = EXIT_FAILURE;
  }
  free(b64);
  return rc;
}

static int run_all(const args *a) {
  lfc_ca_opts ca;
  lfc_error err;
  int exists = 0;
  int rc;

  rc = lfc_ca_exists(a->dir, &exists, &err);
  if (rc != LFC_OK) {
    return fail("all", rc, &err);
  }
  if (!exists) {
    memset(&ca, 0, sizeof ca);
    ca.dir = a->dir;
    ca.days = a->ca_days;
    ca.key_type = a->key_type;
    ca.now = time(NULL);
    rc = lfc_ca_create(&ca, &err);
    if (rc != LFC_OK) {
      return fail("all", rc, &err);
    }
    printf("wrote %s/%s and %s/%s\n", dir_of(a), LFC_CA_KEY_FILE, dir_of(a), LFC_CA_CERT_FILE);
  } else {
    printf("kept the CA in %s/%s\n", dir_of(a), LFC_CA_CERT_FILE);
  }
  return make_serving(a, "all");
}

/* ------------------------------------------------------------------------ */
/* The commands and their help                                               */

static const flag_doc ca_flags[] = {
    {F_DIR, "output directory (default .)"},
    {F_CN, "CA common name (default " LFC_CA_CN_DEFAULT ")"},
    {F_ORG, "organization; repeatable (default none)"},
    {F_DAYS, "validity in days (default 3650)"},
    {F_KEY_TYPE, "ecdsa-p256 or rsa-2048 (default ecdsa-p256)"},
    {F_FORCE, "replace an existing CA, invalidating all it issued (default off)"},
    {F_HELP, "show this help"},
};

static const flag_doc serving_flags[] = {
    {F_DIR, "directory holding the CA and the output (default .)"},
    {F_SERVICE, "the webhook's Service name (required)"},
    {F_NAMESPACE, "the Service's namespace (required)"},
    {F_DNS, "extra DNS subjectAltName; repeatable (default none)"},
    {F_IP, "extra IPv4/IPv6 subjectAltName; repeatable (default none)"},
    {F_DAYS, "validity in days (default 365)"},
    {F_KEY_TYPE, "ecdsa-p256 or rsa-2048 (default ecdsa-p256)"},
    {F_CN, "common name (default <service>.<namespace>.svc)"},
    {F_ORG, "organization; repeatable (default none)"},
    {F_HELP, "show this help"},
};

static const flag_doc rotate_flags[] = {
    {F_DIR, "directory holding the CA and tls.crt (default .)"},
    {F_SERVICE, "new Service name; with --namespace (default: keep names)"},
    {F_NAMESPACE, "new namespace; with --service (default: keep names)"},
    {F_DNS, "extra DNS name, needs --service; repeatable (default none)"},
    {F_IP, "extra IP, needs --service; repeatable (default none)"},
    {F_DAYS, "validity in days (default 365)"},
    {F_KEY_TYPE, "ecdsa-p256 or rsa-2048 (default: the current key's type)"},
    {F_CN, "common name (default: the current one)"},
    {F_ORG, "organization; repeatable (default: the current subject;\n"
            "                       --cn or --org make a new one, O only those given)"},
    {F_HELP, "show this help"},
};

static const flag_doc client_flags[] = {
    {F_DIR, "directory holding the CA and the output (default .)"},
    {F_CN, "common name, the Kubernetes user name (required)"},
    {F_ORG, "organization, a Kubernetes group; repeatable (default none)"},
    {F_DAYS, "validity in days (default 365)"},
    {F_KEY_TYPE, "ecdsa-p256 or rsa-2048 (default ecdsa-p256)"},
    {F_OUT_PREFIX, "write PREFIX.crt and PREFIX.key (default client)"},
    {F_HELP, "show this help"},
};

static const flag_doc ca_bundle_flags[] = {
    {F_DIR, "directory holding ca.crt (default .)"},
    {F_HELP, "show this help"},
};

static const flag_doc all_flags[] = {
    {F_DIR, "output directory (default .)"},
    {F_SERVICE, "the webhook's Service name (required)"},
    {F_NAMESPACE, "the Service's namespace (required)"},
    {F_DNS, "extra DNS subjectAltName; repeatable (default none)"},
    {F_IP, "extra IPv4/IPv6 subjectAltName; repeatable (default none)"},
    {F_DAYS, "serving certificate validity in days (default 365)"},
    {F_CA_DAYS, "CA validity in days, if one is made (default 3650)"},
    {F_KEY_TYPE, "ecdsa-p256 or rsa-2048, both keys (default ecdsa-p256)"},
    {F_HELP, "show this help"},
};

static const command commands[] = {
    {"ca", "ca [flags]",
     "Makes a new self-signed CA: ca.key (mode 0600) and ca.crt. Refuses to\n"
     "replace an existing one without --force.",
     run_ca, ca_flags},
    {"serving", "serving --service NAME --namespace NS [flags]",
     "Makes a serving key and certificate signed by ca.crt/ca.key in --dir:\n"
     "tls.key (mode 0600) and tls.crt, with extendedKeyUsage serverAuth and\n"
     "the subjectAltNames <service>.<namespace>.svc,\n"
     "<service>.<namespace>.svc.cluster.local, every --dns and every --ip.\n"
     "Replaces an existing pair atomically, like rotate.",
     run_serving, serving_flags},
    {"rotate", "rotate [flags]",
     "Replaces tls.crt and tls.key with a new key and a new serial from the\n"
     "same CA. The current tls.crt must exist and come from ca.crt; its\n"
     "names are kept unless --service and --namespace are given. Writes both\n"
     "files to temporary files, then renames tls.key and then tls.crt into\n"
     "place: readers should reload on a change of tls.crt.",
     run_rotate, rotate_flags},
    {"client", "client --cn NAME [--org ORG]... [flags]",
     "Makes a client key and certificate (extendedKeyUsage clientAuth)\n"
     "signed by the CA: client.key (mode 0600) and client.crt. For the API\n"
     "server's --client-ca-file: CN is the user, each O a group.",
     run_client, client_flags},
    {"ca-bundle", "ca-bundle [--dir DIR]",
     "Prints the base64 of ca.crt's PEM on one line, the caBundle of a\n"
     "webhook configuration.",
     run_ca_bundle, ca_bundle_flags},
    {"all", "all --service NAME --namespace NS [flags]",
     "Makes the CA if --dir has none, then a serving pair: the one-shot.", run_all, all_flags},
};

#define N_COMMANDS (sizeof commands / sizeof commands[0])

static void print_tool_usage(FILE *f) {
  fprintf(f, "usage: " PROG " <command> [flags]\n\n"
             "Makes the certificates of the leasefence webhook.\n\n"
             "Commands:\n");
  for (size_t i = 0; i < N_COMMANDS; i++) {
    fprintf(f, "  %s\n", commands[i].synopsis);
  }
  fprintf(f, "\nFiles in --dir: ca.crt, ca.key, tls.crt, tls.key, client.crt,\n"
             "client.key. Keys are written with mode 0600.\n"
             "Run '" PROG " <command> --help' for a command's flags.\n"
             "Exit status: 0 done, 1 I/O or crypto failure, 2 bad usage or "
             "input.\n");
}

static void print_command_help(const command *c) {
  char left[40];

  printf("usage: " PROG " %s\n\n%s\n\nFlags:\n", c->synopsis, c->about);
  for (const flag_doc *d = c->flags;; d++) {
    const flag_spec *s = &flag_specs[d->id];
    if (s->metavar != NULL) {
      snprintf(left, sizeof left, "--%s %s", s->name, s->metavar);
    } else {
      snprintf(left, sizeof left, "--%s", s->name);
    }
    printf("  %-20s %s\n", left, d->help);
    if (d->id == F_HELP) {
      break;
    }
  }
}

/* ------------------------------------------------------------------------ */
/* Parsing                                                                   */

static int usage_error(const command *c, const char *what, const char *arg) {
  fprintf(stderr, PROG " %s: %s%s%s (see '" PROG " %s --help')\n", c->name, what,
          arg != NULL ? " " : "", arg != NULL ? arg : "", c->name);
  return EXIT_USAGE;
}

static int parse_days(const command *c, const char *flag, const char *text, int *out) {
  char *end = NULL;
  long v;

  errno = 0;
  v = strtol(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || v < 1 || v > LFC_DAYS_MAX) {
    fprintf(stderr,
            PROG " %s: --%s must be a whole number of days, 1..%d, not "
                 "'%.32s' (see '" PROG " %s --help')\n",
            c->name, flag, LFC_DAYS_MAX, text, c->name);
    return EXIT_USAGE;
  }
  *out = (int)v;
  return 0;
}

/* Appends a repeatable flag's value, within the list's bound. */
static int push(const command *c, const char *flag, const char **list, size_t *n, size_t max,
                const char *value) {
  if (*n >= max) {
    fprintf(stderr, PROG " %s: at most %zu --%s flags (see '" PROG " %s --help')\n", c->name, max,
            flag, c->name);
    return EXIT_USAGE;
  }
  list[(*n)++] = value;
  return 0;
}

static int take_flag(const command *c, args *a, flag_id id, const char *value) {
  const char *name = flag_specs[id].name;
  lfc_error err;
  int repeatable = id == F_DNS || id == F_IP || id == F_ORG;

  if (!repeatable && (a->seen & (1u << id)) != 0) {
    fprintf(stderr, PROG " %s: --%s given twice (see '" PROG " %s --help')\n", c->name, name,
            c->name);
    return EXIT_USAGE;
  }
  a->seen |= 1u << id;
  switch (id) {
  case F_DIR:
    a->dir = value;
    return 0;
  case F_SERVICE:
    a->service = value;
    return 0;
  case F_NAMESPACE:
    a->namespace_ = value;
    return 0;
  case F_CN:
    a->cn = value;
    return 0;
  case F_OUT_PREFIX:
    a->out_prefix = value;
    return 0;
  case F_DNS:
    return push(c, name, a->dns, &a->n_dns, LFC_DNS_MAX, value);
  case F_IP:
    return push(c, name, a->ips, &a->n_ips, LFC_IP_MAX, value);
  case F_ORG:
    return push(c, name, a->orgs, &a->n_orgs, LFC_ORG_MAX, value);
  case F_DAYS:
    return parse_days(c, name, value, &a->days);
  case F_CA_DAYS:
    return parse_days(c, name, value, &a->ca_days);
  case F_KEY_TYPE:
    if (lfc_key_type_parse(value, &a->key_type, &err) != LFC_OK) {
      return usage_error(c, err.text, NULL);
    }
    return 0;
  case F_FORCE:
    a->force = 1;
    return 0;
  case F_HELP:
  case F_COUNT:
    break;
  }
  return 0;
}

/* Parses the command's flags from argv[1..]; argv[0] is the command name.
 * Returns 0 to go on, -1 when --help was printed, or an exit code. */
static int parse_flags(const command *c, int argc, char **argv, args *a) {
  struct option opts[F_COUNT + 1];
  size_t n = 0;
  int rc;

  memset(opts, 0, sizeof opts);
  for (const flag_doc *d = c->flags;; d++) {
    opts[n].name = flag_specs[d->id].name;
    opts[n].has_arg = flag_specs[d->id].metavar != NULL ? required_argument : no_argument;
    opts[n].val = (int)d->id;
    n++;
    if (d->id == F_HELP) {
      break;
    }
  }

  /* Our own messages, not getopt's: opterr off, and the leading ':' makes a
   * missing value return ':' rather than '?'. */
  opterr = 0;
  optind = 1;
  for (;;) {
    int idx = -1;
    int ch = getopt_long(argc, argv, ":", opts, &idx);
    if (ch == -1) {
      break;
    }
    if (ch == ':') {
      return usage_error(c, "missing value for", argv[optind - 1]);
    }
    if (ch == '?') {
      return usage_error(c, "unknown flag", argv[optind - 1]);
    }
    if (ch == F_HELP) {
      print_command_help(c);
      return -1;
    }
    rc = take_flag(c, a, (flag_id)ch, optarg);
    if (rc != 0) {
      return rc;
    }
  }
  if (optind < argc) {
    return usage_error(c, "unexpected argument", argv[optind]);
  }
  return 0;
}

/* The flags each command cannot do without. Checked here, before any work,
 * so the message can name the flag. */
static int check_required(const command *c, const args *a) {
  int needs_names = strcmp(c->name, "serving") == 0 || strcmp(c->name, "all") == 0;

  if (needs_names && a->service == NULL) {
    return usage_error(c, "--service is required", NULL);
  }
  if (needs_names && a->namespace_ == NULL) {
    return usage_error(c, "--namespace is required", NULL);
  }
  if (strcmp(c->name, "rotate") == 0 && (a->service == NULL) != (a->namespace_ == NULL)) {
    return usage_error(c, "--service and --namespace go together", NULL);
  }
  if (strcmp(c->name, "client") == 0 && a->cn == NULL) {
    return usage_error(c, "--cn is required", NULL);
  }
  return 0;
}

int main(int argc, char **argv) {
  const command *c = NULL;
  args a;
  int rc;

  if (argc < 2) {
    fprintf(stderr, PROG ": missing command (see '" PROG " --help')\n");
    return EXIT_USAGE;
  }
  if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
      strcmp(argv[1], "help") == 0) {
    print_tool_usage(stdout);
    return EXIT_SUCCESS;
  }
  if (strcmp(argv[1], "--version") == 0) {
    printf(PROG " %s\n", LFC_VERSION);
    return EXIT_SUCCESS;
  }
  for (size_t i = 0; i < N_COMMANDS; i++) {
    if (strcmp(argv[1], commands[i].name) == 0) {
      c = &commands[i];
    }
  }
  if (c == NULL) {
    fprintf(stderr, PROG ": unknown command '%.64s' (see '" PROG " --help')\n", argv[1]);
    return EXIT_USAGE;
  }
  memset(&a, 0, sizeof a);
  rc = parse_flags(c, argc - 1, argv + 1, &a);
  if (rc == -1) {
    return EXIT_SUCCESS;
  }
  if (rc != 0) {
    return rc;
  }
  rc = check_required(c, &a);
  if (rc != 0) {
    return rc;
  }
  rc = c->run(&a);
  if (fflush(stdout) != 0 && rc == EXIT_SUCCESS) {
    fprintf(stderr, PROG " %s: writing to stdout failed: %s\n", c->name, strerror(errno));
    rc = EXIT_FAILURE;
  }
  return rc;
}
