/*
 * kube-get-lease: reads one Lease through leasefence's Kubernetes client and
 * prints the fields fencing uses, or the error. For people checking what the
 * webhook would see, and for the end-to-end tests.
 *
 *   kube-get-lease [--kubeconfig F [--context C] | --in-cluster]
 *                  [--namespace N] --name L [--timeout-ms MS]
 *                  [--watch SECONDS]
 *
 * With --watch, it then follows the Lease for that many seconds and prints
 * one line per change (type, holder, term, renewTime), as the webhook's
 * view of an election would change.
 *
 * Exit status: 0 found, 2 not found, 3 denied, 4 timed out, 1 other errors,
 * 64 usage.
 */
#include <leasefence/kube.h>

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *to) {
  fprintf(to, "usage: kube-get-lease [--kubeconfig FILE [--context NAME] | --in-cluster]\n"
              "                      [--namespace NS] --name LEASE [--timeout-ms MS]\n"
              "                      [--watch SECONDS]\n");
}

/* Prints one watch event on one line. */
static int print_event(const char *type, json_t *object, void *arg) {
  lf_lease lease;
  lf_error err = {0};
  char renew[32] = "-";
  (void)arg;
  if (strcmp(type, "BOOKMARK") == 0) {
    return 0;
  }
  if (strcmp(type, "ERROR") == 0) {
    printf("%s %s\n", type, json_string_value(json_object_get(object, "message")));
    fflush(stdout);
    return 1;
  }
  if (lf_lease_from_json(object, &lease, &err) != LF_OK) {
    printf("%s (not a Lease: %s)\n", type, err.text);
  } else {
    if (lease.renew_us != LF_TIME_NONE) {
      (void)lf_time_format(lease.renew_us, renew, sizeof(renew));
    }
    printf("%s rv=%s holder=%s term=%d renewTime=%s\n", type, lease.resource_version,
           lease.holder[0] != '\0' ? lease.holder : "-", (int)lease.transitions, renew);
  }
  fflush(stdout);
  return 0;
}

static void print_time(const char *label, int64_t us) {
  char buf[32];
  if (us == LF_TIME_NONE || lf_time_format(us, buf, sizeof(buf)) != LF_OK) {
    printf("%s: -\n", label);
  } else {
    printf("%s: %s\n", label, buf);
  }
}

static int exit_code(int rc) {
  switch (rc) {
  case LF_ENOTFOUND:
    return 2;
  case LF_EDENIED:
    return 3;
  case LF_ETIMEDOUT:
    return 4;
  default:
    return 1;
  }
}

int main(int argc, char **argv) {
  static const struct option longopts[] = {{"kubeconfig", required_argument, NULL, 'k'},
                                           {"context", required_argument, NULL, 'c'},
                                           {"in-cluster", no_argument, NULL, 'i'},
                                           {"namespace", required_argument, NULL, 'n'},
                                           {"name", required_argument, NULL, 'l'},
                                           {"timeout-ms", required_argument, NULL, 't'},
                                           {"watch", required_argument, NULL, 'w'},
                                           {"help", no_argument, NULL, 'h'},
                                           {NULL, 0, NULL, 0}};
  const char *kubeconfig = NULL;
  const char *context = NULL;
  const char *ns = NULL;
  const char *name = NULL;
  long timeout_ms = 5000;
  long watch_s = 0;
  int in_cluster = 0;
  int opt;
  int rc;
  int status = 1;
  lf_kube_config *cfg = NULL;
  lf_kube_client *client = NULL;
  lf_lease_ref ref;
  lf_lease lease;
  lf_error err = {0};

  while ((opt = getopt_long(argc, argv, "k:c:in:l:t:w:h", longopts, NULL)) != -1) {
    switch (opt) {
    case 'k':
      kubeconfig = optarg;
      break;
    case 'c':
      context = optarg;
      break;
    case 'i':
      in_cluster = 1;
      break;
    case 'n':
      ns = optarg;
      break;
    case 'l':
      name = optarg;
      break;
    case 't':
      timeout_ms = strtol(optarg, NULL, 10);
      break;
    case 'w':
      watch_s = strtol(optarg, NULL, 10);
      break;
    case 'h':
      usage(stdout);
      return 0;
    default:
      usage(stderr);
      return 64;
    }
  }
  if (name == NULL || optind != argc || timeout_ms <= 0 || watch_s < 0 || watch_s > 86400 ||
      (in_cluster && kubeconfig != NULL)) {
    usage(stderr);
    return 64;
  }
  if (in_cluster) {
    rc = lf_kube_config_in_cluster(NULL, &cfg, &err);
  } else {
    rc = lf_kube_config_from_kubeconfig(kubeconfig, context, &cfg, &err);
  }
  if (rc != LF_OK) {
    fprintf(stderr, "kube-get-lease: %s\n", err.text);
    goto out;
  }
  if (ns == NULL) {
    ns = cfg->ns[0] != '\0' ? cfg->ns : "default";
  }
  memset(&ref, 0, sizeof(ref));
  if (strlen(ns) > LF_NAMESPACE_MAX || strlen(name) > LF_NAME_MAX) {
    fprintf(stderr, "kube-get-lease: namespace or name too long\n");
    goto out;
  }
  strcpy(ref.ns, ns);
  strcpy(ref.name, name);
  rc = lf_kube_client_new(&cfg, NULL, &client, &err);
  if (rc != LF_OK) {
    fprintf(stderr, "kube-get-lease: %s\n", err.text);
    goto out;
  }
  rc = lf_kube_get_lease(client, &ref, timeout_ms, &lease, &err);
  if (rc != LF_OK) {
    fprintf(stderr, "kube-get-lease: %s\n", err.text);
    status = exit_code(rc);
    goto out;
  }
  printf("namespace: %s\nname: %s\nuid: %s\nresourceVersion: %s\nholderIdentity: %s\n"
         "leaseDurationSeconds: %d\nleaseTransitions: %d\n",
         lease.ref.ns, lease.ref.name, lease.uid, lease.resource_version, lease.holder,
         (int)lease.duration_s, (int)lease.transitions);
  print_time("acquireTime", lease.acquire_us);
  print_time("renewTime", lease.renew_us);
  fflush(stdout);
  status = 0;
  if (watch_s > 0) {
    /* From the version just read, so no change in between is missed; the
     * server ends the stream after timeoutSeconds. */
    char esc_ns[3 * LF_NAMESPACE_MAX + 1];
    char esc_name[3 * LF_NAME_MAX + 1];
    char esc_rv[3 * LF_RESOURCE_VERSION_MAX + 1];
    char path[2048];
    (void)lf_kube_escape(ref.ns, esc_ns, sizeof(esc_ns));
    (void)lf_kube_escape(ref.name, esc_name, sizeof(esc_name));
    (void)lf_kube_escape(lease.resource_version, esc_rv, sizeof(esc_rv));
    snprintf(path, sizeof(path),
             "/apis/coordination.k8s.io/v1/namespaces/%s/leases?watch=1"
             "&fieldSelector=metadata.name%%3D%s&resourceVersion=%s&timeoutSeconds=%ld"
             "&allowWatchBookmarks=true",
             esc_ns, esc_name, esc_rv, watch_s);
    rc = lf_kube_watch(client, path, (watch_s + 10) * 1000, print_event, NULL, &err);
    if (rc != LF_OK) {
      fprintf(stderr, "kube-get-lease: watch: %s\n", err.text);
      status = exit_code(rc);
    }
  }

out:
  lf_kube_client_free(&client);
  lf_kube_config_free(&cfg);
  return status;
}
