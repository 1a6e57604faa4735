/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "fleet.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "appsource.h"
#include "build.h"
#include "compress.h"
#include "host.h"
#include "imager.h"
#include "log.h"
#include "model.h"
#include "output.h"
#include "profile.h"
#include "secret.h"
#include "source.h"
#include "util.h"
#include "yamltree.h"

struct fleet_host {
        char *name, *role, *address;
        unsigned line;
        struct host_settings hs;        /* the entry's own */
        struct host_settings settings;  /* merged and finalized (settle_host), for its build */
        char **sets;            /* env: map as KEY=VALUE */
        size_t nsets;
        unsigned *set_lines;    /* each one's line */
        char **env_files;
        size_t nenv_files;
        char *source;
        struct profile profile;
        struct env final_env;
        struct env generated;
        struct env dropped;     /* shared keys its role does not use */
        char *label;
        char *out;
        bool built;
};

struct fleet {
        const char *file;
        char *name;
        unsigned long long prefix;
        char *gateway;
        char *gateway_where, *dns_where; /* "FILE:LINE" of network's keys, or NULL */
        char **dns;
        size_t ndns;
        char *format;           /* "img", "img.xz", "img.zst", "img.gz" */
        struct host_settings shared;
        char **sets;
        size_t nsets;
        unsigned *set_lines;
        char **env_files;
        size_t nenv_files;
        char *source;
        struct fleet_host *hosts;
        size_t nhosts;
        struct dotenv_text *env_texts; /* every env file's, read once (read_env_files) */
        size_t nenv_texts;
        struct appsource_cache sources; /* --source archives, read once for every host */
};

static void strv_free(char **v, size_t n) {
        for (size_t i = 0; i < n; i++)
                free(v[i]);
        free(v);
}

static void strv_push(char ***v, size_t *n, const char *s) {
        *v = xrealloc(*v, (*n + 1) * sizeof **v);
        (*v)[(*n)++] = xstrdup(s);
}

static void fleet_free(struct fleet *f) {
        for (size_t i = 0; i < f->nhosts; i++) {
                struct fleet_host *h = &f->hosts[i];
                free(h->name);
                free(h->role);
                free(h->address);
                host_free(&h->hs);
                host_free(&h->settings);
                strv_free(h->sets, h->nsets);
                free(h->set_lines);
                strv_free(h->env_files, h->nenv_files);
                free(h->source);
                profile_free(&h->profile);
                env_free(&h->final_env);
                env_free(&h->generated);
                env_free(&h->dropped);
                free(h->label);
                free(h->out);
        }
        free(f->hosts);
        free(f->name);
        free(f->gateway);
        strv_free(f->dns, f->ndns);
        free(f->format);
        host_free(&f->shared);
        strv_free(f->sets, f->nsets);
        free(f->set_lines);
        free(f->gateway_where);
        free(f->dns_where);
        strv_free(f->env_files, f->nenv_files);
        free(f->source);
        for (size_t i = 0; i < f->nenv_texts; i++)
                dotenv_text_free(&f->env_texts[i]);
        free(f->env_texts);
        appsource_cache_free(&f->sources);
}

/* A view of map n holding only the keys not in skip, for host_from_yaml. */
static struct ynode *view_without(const struct ynode *n, const char *const *skip) {
        struct ynode *v = xcalloc(1, sizeof *v);
        v->kind = Y_MAP;
        v->line = n->line;
        v->keys = xcalloc(n->n + 1, sizeof *v->keys);
        v->key_lines = xcalloc(n->n + 1, sizeof *v->key_lines);
        v->items = xcalloc(n->n + 1, sizeof *v->items);
        for (size_t i = 0; i < n->n; i++) {
                bool skipped = false;
                for (const char *const *s = skip; *s; s++)
                        if (!strcmp(*s, n->keys[i]))
                                skipped = true;
                if (skipped)
                        continue;
                v->keys[v->n] = n->keys[i];
                v->key_lines[v->n] = n->key_lines[i];
                v->items[v->n++] = n->items[i];
        }
        return v;
}

static void view_free(struct ynode *v) {
        free(v->keys);
        free(v->key_lines);
        free(v->items);
        free(v);
}

static char *relative_to(const char *yaml_file, const char *path) {
        if (path[0] == '/' || !strchr(yaml_file, '/'))
                return xstrdup(path);
        _cleanup_free_ char *dir = path_dirname(yaml_file);
        return xasprintf("%s/%s", dir, path);
}

static void push_line(unsigned **lines, size_t n, unsigned line) {
        *lines = xrealloc(*lines, (n + 1) * sizeof(**lines));
        (*lines)[n] = line;
}

/* An env: map as KEY=VALUE strings, each with the line of its key. */
static int env_map(const char *file, const char *what, const struct ynode *n, char ***sets, size_t *nsets,
                   unsigned **lines) {
        if (!n)
                return 0;
        if (n->kind != Y_MAP)
                return log_error_at(EINVAL, file, n->line, "%s: must be a mapping of KEY: value", what);
        for (size_t i = 0; i < n->n; i++) {
                if (n->items[i]->kind != Y_SCALAR)
                        return log_error_at(EINVAL, file, n->items[i]->line, "%s.%s: must be a string", what,
                                            n->keys[i]);
                if (!env_key_valid(n->keys[i]))
                        return log_error_at(EINVAL, file, n->key_lines[i], "%s: '%s' is not a valid variable name",
                                            what, n->keys[i]);
                /* `KEY: ~` is YAML's null, as `KEY:` is: empty, not "~" */
                const char *v = ynode_is_null(n->items[i]) ? "" : n->items[i]->scalar;
                _cleanup_free_ char *kv = xasprintf("%s=%s", n->keys[i], v);
                push_line(lines, *nsets, n->key_lines[i]);
                strv_push(sets, nsets, kv);
        }
        return 0;
}

static int file_list(const char *file, const char *what, const struct ynode *n, char ***out, size_t *count) {
        char **v = NULL;
        size_t k = 0;
        int r = ynode_strings(file, what, n, &v, &k);
        for (size_t i = 0; i < k; i++) {
                if (r >= 0) {
                        _cleanup_free_ char *p = relative_to(file, v[i]);
                        secret_file_check_mode(p); /* an env file: it holds secrets */
                        strv_push(out, count, p);
                }
                free(v[i]);
        }
        free(v);
        return r;
}

static const char *const top_keys[] = {"name", "network", "format", "env", "env_files", "source", "hosts",
                                       /* shared host settings */
                                       "user", "password_hash", "password_file", "ssh_keys", "ssh_key_files",
                                       "timezone", "locale", "keymap", "wifi", NULL};
static const char *const top_only[] = {"name", "network", "format", "env", "env_files", "source", "hosts", NULL};
static const char *const host_keys[] = {"name", "role", "address", "model", "env", "env_files", "source",
                                        "user", "password_hash", "password_file", "ssh_keys", "ssh_key_files",
                                        "timezone", "locale", "keymap", "wifi", NULL};
static const char *const host_only[] = {"name", "role", "address", "env", "env_files", "source", NULL};
static const char *const network_keys[] = {"prefix", "gateway", "dns", NULL};

static int parse_host(struct fleet *f, const struct ynode *n, struct fleet_host *h) {
        const char *file = f->file;
        int r = ynode_check_keys(file, "hosts[]", n, host_keys);
        if (r < 0)
                return r;
        h->line = n->line;
        struct ynode *v;
        if (!(v = ynode_get(n, "name")) || (r = ynode_string(file, "hosts[].name", v, &h->name)) < 0)
                return v ? r : log_error_at(EINVAL, file, n->line, "host without a name");
        if (!host_valid_hostname(h->name))
                return log_error_at(EINVAL, file, v->line, "host name '%s' is not a valid hostname", h->name);
        h->label = xasprintf("%s: host %s", file, h->name);
        if (!(v = ynode_get(n, "role")) || (r = ynode_string(file, "role", v, &h->role)) < 0)
                return v ? r : log_error_at(EINVAL, file, n->line, "host %s has no role", h->name);
        if (!(v = ynode_get(n, "address")) || (r = ynode_string(file, "address", v, &h->address)) < 0)
                return v ? r : log_error_at(EINVAL, file, n->line, "host %s has no address", h->name);
        /* "10.0.0.5/24", as --ip takes it: the fleet's hosts share one prefix */
        if (strchr(h->address, '/'))
                return log_error_at(EINVAL, file, v->line,
                                    "host %s: address '%s': give the address alone; the prefix length of every "
                                    "host's is network.prefix (24 unless set)",
                                    h->name, h->address);
        if (!host_valid_ipv4(h->address))
                return log_error_at(EINVAL, file, v->line, "host %s: '%s' is not an IPv4 address", h->name,
                                    h->address);
        if ((v = ynode_get(n, "source"))) {
                _cleanup_free_ char *s = NULL;
                if ((r = ynode_string(file, "source", v, &s)) < 0)
                        return r;
                h->source = relative_to(file, s);
        }
        if ((r = env_map(file, "env", ynode_get(n, "env"), &h->sets, &h->nsets, &h->set_lines)) < 0)
                return r;
        if ((r = file_list(file, "env_files", ynode_get(n, "env_files"), &h->env_files, &h->nenv_files)) < 0)
                return r;
        struct ynode *view = view_without(n, host_only);
        r = host_from_yaml(file, view, &h->hs);
        view_free(view);
        return r;
}

static int fleet_parse(const char *file, struct fleet *f) {
        struct ynode *root = NULL;
        f->file = file;
        int r = yaml_load(file, NULL, 0, &root);
        if (r < 0)
                return r;
        struct ynode *v;
        if ((r = ynode_check_keys(file, "fleet", root, top_keys)) < 0)
                goto out;
        if ((v = ynode_get(root, "name")) && (r = ynode_string(file, "name", v, &f->name)) < 0)
                goto out;
        if ((v = ynode_get(root, "format"))) {
                if ((r = ynode_string(file, "format", v, &f->format)) < 0)
                        goto out;
                if (strcmp(f->format, "img") && strcmp(f->format, "img.xz") && strcmp(f->format, "img.zst") &&
                    strcmp(f->format, "img.gz")) {
                        r = log_error_at(EINVAL, file, v->line, "format must be img, img.xz, img.zst or img.gz");
                        goto out;
                }
        }
        f->prefix = 24;
        struct ynode *net = ynode_get(root, "network");
        if (net) {
                if ((r = ynode_check_keys(file, "network", net, network_keys)) < 0)
                        goto out;
                v = ynode_get(net, "prefix");
                int mask = v && v->kind == Y_SCALAR ? host_netmask_prefix(v->scalar) : -ENOENT;
                if (mask >= 1) {
                        r = log_error_at(EINVAL, file, v->line,
                                         "network.prefix is the prefix length, not the netmask: prefix: %d (%s is /%d)",
                                         mask, v->scalar, mask);
                        goto out;
                }
                if (mask != -ENOENT) {
                        r = log_error_at(EINVAL, file, v->line,
                                         "network.prefix is the prefix length, 1 to 32: 24 for netmask 255.255.255.0 "
                                         "(%s %s)",
                                         v->scalar, mask == 0 ? "would be /0" : "is no netmask: its 1 bits must all come first");
                        goto out;
                }
                if (v && (r = ynode_uint(file, "network.prefix", v, 32, &f->prefix)) < 0)
                        goto out;
                if (v && !f->prefix) {
                        r = log_error_at(EINVAL, file, v->line, "network.prefix must be 1 to 32 (24 for a home network)");
                        goto out;
                }
                if ((v = ynode_get(net, "gateway")) && (r = ynode_string(file, "network.gateway", v, &f->gateway)) < 0)
                        goto out;
                if (v)
                        f->gateway_where = xasprintf("%s:%u", file, v->line);
                v = ynode_get(net, "dns");
                if ((r = ynode_strings(file, "network.dns", v, &f->dns, &f->ndns)) < 0)
                        goto out;
                if (v)
                        f->dns_where = xasprintf("%s:%u", file, v->line);
        }
        if ((v = ynode_get(root, "source"))) {
                _cleanup_free_ char *s = NULL;
                if ((r = ynode_string(file, "source", v, &s)) < 0)
                        goto out;
                f->source = relative_to(file, s);
        }
        if ((r = env_map(file, "env", ynode_get(root, "env"), &f->sets, &f->nsets, &f->set_lines)) < 0)
                goto out;
        if ((r = file_list(file, "env_files", ynode_get(root, "env_files"), &f->env_files, &f->nenv_files)) < 0)
                goto out;
        struct ynode *view = view_without(root, top_only);
        r = host_from_yaml(file, view, &f->shared);
        view_free(view);
        if (r < 0)
                goto out;
        struct ynode *hosts = ynode_get(root, "hosts");
        if (!hosts || hosts->kind != Y_SEQ || hosts->n == 0) {
                r = log_error_at(EINVAL, file, hosts ? hosts->line : root->line, "hosts: must list at least one host");
                goto out;
        }
        f->hosts = xcalloc(hosts->n, sizeof *f->hosts);
        for (size_t i = 0; i < hosts->n; i++) {
                f->nhosts++;
                if ((r = parse_host(f, hosts->items[i], &f->hosts[i])) < 0)
                        goto out;
                for (size_t k = 0; k < i; k++) {
                        /* host names are case-blind on the network (DNS, /etc/hosts) */
                        if (!strcasecmp(f->hosts[k].name, f->hosts[i].name)) {
                                r = log_error_at(EINVAL, file, f->hosts[i].line, "host name %s is used twice%s",
                                                 f->hosts[i].name,
                                                 strcmp(f->hosts[k].name, f->hosts[i].name) ? " (names ignore case)"
                                                                                            : "");
                                goto out;
                        }
                        if (!strcmp(f->hosts[k].address, f->hosts[i].address)) {
                                r = log_error_at(EINVAL, file, f->hosts[i].line,
                                                 "hosts %s and %s have the same address %s", f->hosts[k].name,
                                                 f->hosts[i].name, f->hosts[i].address);
                                goto out;
                        }
                }
        }
out:
        ynode_free(root);
        return r;
}

/* The host with role, and in *other a second one if there is one. */
static struct fleet_host *host_with_role(struct fleet *f, const char *role, struct fleet_host **other) {
        struct fleet_host *found = NULL;
        *other = NULL;
        for (size_t i = 0; i < f->nhosts && !*other; i++)
                if (!strcmp(f->hosts[i].role, role) || !strcmp(f->hosts[i].profile.name, role)) {
                        if (found)
                                *other = &f->hosts[i];
                        else
                                found = &f->hosts[i];
                }
        return found;
}

/* Expand a profile's fleet template ("http://${observability.host}:5080",
 * "${observability.env.KEY}").  *value NULL when a referenced env key is
 * unset there (nothing to derive).  -EAGAIN when that host is not built yet. */
static int expand_template(struct fleet *f, struct fleet_host *h, const char *key, const char *tpl, char **value) {
        struct buf b = {0};
        const char *s = tpl;
        *value = NULL;
        while (*s) {
                const char *d = strstr(s, "${");
                if (!d) {
                        buf_puts(&b, s);
                        break;
                }
                buf_append(&b, s, (size_t)(d - s));
                const char *end = strchr(d, '}');
                _cleanup_free_ char *ref = xstrndup(d + 2, (size_t)(end - d - 2));
                char *dot = strchr(ref, '.');
                *dot = 0;
                struct fleet_host *other; /* none: fleet_build refused a second */
                struct fleet_host *peer = host_with_role(f, ref, &other);
                if (!peer) {
                        buf_free(&b);
                        return log_error(EINVAL, h->label,
                                         "%s needs a host with role '%s', and the fleet has none: add one, or use "
                                         "a role that does not need it (e.g. app-standalone)",
                                         key, ref);
                }
                if (!strcmp(dot + 1, "host"))
                        buf_puts(&b, peer->address);
                else {
                        if (!peer->built) {
                                buf_free(&b);
                                return -EAGAIN;
                        }
                        const char *pv = env_get(&peer->final_env, dot + 1 + 4);
                        if (!pv) {
                                buf_free(&b);
                                return 0;
                        }
                        buf_puts(&b, pv);
                }
                s = end + 1;
        }
        *value = (char *)buf_steal(&b, NULL);
        return 0;
}

static int derive(struct fleet *f, struct fleet_host *h, struct env *derived) {
        for (size_t i = 0; i < h->profile.nenv; i++) {
                const struct profile_env *pe = &h->profile.env[i];
                if (!pe->fleet)
                        continue;
                char *v = NULL;
                int r = expand_template(f, h, pe->key, pe->fleet, &v);
                if (r < 0)
                        return r;
                if (v) {
                        env_set(derived, pe->key, v, ORIGIN_DERIVED, f->file, 0);
                        free_secret(v);
                }
        }
        return 0;
}

struct fleet_run {
        char **written;
        size_t nwritten;
        struct stat *ids; /* each one's device and inode, once renamed */
        /* DIR's lock (output_lock_dir), held from before the base is read
         * until the fleet is done or undone, or -1: two fleets into one
         * directory (--force) would otherwise interleave their images and
         * secrets.env, each file whole but one fleet's secrets beside the
         * other's images.  Each host's commit then takes no lock of its own. */
        int dir_lock;
};

/* Right after its commit, path is this fleet's file: its device and inode
 * say so later, when another run may have replaced it (--force). */
static void remember(struct fleet_run *run, const char *path) {
        run->ids = xrealloc(run->ids, (run->nwritten + 1) * sizeof(*run->ids));
        if (lstat(path, &run->ids[run->nwritten]) < 0)
                run->ids[run->nwritten] = (struct stat){0};
        strv_push(&run->written, &run->nwritten, path);
}


/* One host's build, kept until its commit (detached, build_join) is done:
 * the job and the options it points to are the commit's too. */
struct host_run {
        struct build_opts ho;
        char **files, **sets;
        size_t nfiles, nsets;
        unsigned *set_lines;
        bool *file_shared, *set_shared; /* parallel to files and sets */
        struct env unused;              /* the build's generated: none, check_hosts made them */
        struct build_job job;
};

static void host_run_free(struct host_run *hr) {
        host_free(&hr->job.host);
        env_free(&hr->unused);
        strv_free(hr->files, hr->nfiles);
        strv_free(hr->sets, hr->nsets);
        free(hr->set_lines);
        free(hr->file_shared);
        free(hr->set_shared);
        free(hr);
}

/* Wait for hr's commit (none: 0); its image is then the fleet's. */
static int host_run_join(struct host_run *hr, struct fleet_run *run) {
        if (!hr)
                return 0;
        int r = build_join(&hr->job);
        if (r >= 0 && !hr->ho.dry_run)
                remember(run, hr->job.out);
        host_run_free(hr);
        return r;
}

static void push_flag(bool **v, size_t n, bool flag) {
        *v = xrealloc(*v, (n + 1) * sizeof **v);
        (*v)[n] = flag;
}

/* Append n KEY=VALUE settings, with their fleet file lines (NULL: 0);
 * shared: every host's, not this host's own. */
static void add_sets(struct host_run *hr, char *const *sets, const unsigned *lines, size_t n, bool shared) {
        for (size_t i = 0; i < n; i++) {
                push_line(&hr->set_lines, hr->nsets, lines ? lines[i] : 0);
                push_flag(&hr->set_shared, hr->nsets, shared);
                strv_push(&hr->sets, &hr->nsets, sets[i]);
        }
}

static void add_files(struct host_run *hr, char *const *files, size_t n, bool shared) {
        for (size_t i = 0; i < n; i++) {
                push_flag(&hr->file_shared, hr->nfiles, shared);
                strv_push(&hr->files, &hr->nfiles, files[i]);
        }
}

/* What is one host's alone, and so the fleet file's to say: refused on the
 * command line and in a --host file (which gives every host's defaults). */
static bool sets_per_host(const struct host_settings *d) {
        return d->hostname || d->ip || d->gateway || d->model;
}

static int check_host_defaults(const char *file, const struct host_settings *d) {
        if (sets_per_host(d))
                return log_error(EUSAGE, file,
                                 "hostname, ip, gateway and model are per host with --fleet: set them in the fleet "
                                 "file (hosts[].name, address, model; network.gateway)");
        return 0;
}

/* Host h's settings, merged and finalized (key, password and Wi-Fi files
 * read, every value checked) into h->settings, as its build will use them:
 * done for every host before the base is read, so that a bad value costs
 * no decompression.  --host file < fleet file (network:, then the shared
 * keys) < host entry < command line (given); the name and address are the
 * entry's. */
static int settle_host(const struct build_opts *o, const struct fleet *f, const struct host_settings *defaults,
                       const struct host_settings *given, struct fleet_host *h) {
        struct host_settings *hs = &h->settings;
        struct host_settings net = {.gateway = f->gateway, .dns = f->dns, .ndns = f->ndns};
        net.where[HF_GATEWAY] = f->gateway_where;
        net.where[HF_DNS] = f->dns_where;
        host_merge(hs, defaults);
        host_merge(hs, &net); /* only read: f's own strings */
        host_merge(hs, &f->shared);
        host_merge(hs, &h->hs);
        host_merge(hs, given);
        free(hs->hostname);
        hs->hostname = xstrdup(h->name);
        free(hs->ip);
        hs->ip = xasprintf("%s/%llu", h->address, f->prefix);
        /* the entry's own: named by its line, below */
        free(hs->where[HF_HOSTNAME]);
        free(hs->where[HF_IP]);
        hs->where[HF_HOSTNAME] = hs->where[HF_IP] = NULL;
        for (size_t i = 0; i < f->nhosts; i++) {
                _cleanup_free_ char *line = xasprintf("%s\t%s", f->hosts[i].address, f->hosts[i].name);
                strv_push(&hs->extra_hosts, &hs->nextra_hosts, line);
        }
        /* what host_finalize refuses is named by the host's entry: the
         * value may come from the shared keys or a --host file, but it is
         * this host that cannot be built */
        free(hs->origin);
        hs->origin = xasprintf("%s:%u: host %s", f->file, h->line, h->name);
        /* a value from a file is named at its own line (perhaps shared by
         * every host), and with the host that cannot take it */
        for (int k = 0; k < HF_N; k++)
                if (hs->where[k]) {
                        char *w = xasprintf("%s: host %s", hs->where[k], h->name);
                        free(hs->where[k]);
                        hs->where[k] = w;
                }
        return host_finalize(hs, o->allow_weak);
}

/* The files not read yet, read into f->env_texts. */
static int read_env_list(struct fleet *f, char *const *files, size_t n) {
        for (size_t i = 0; i < n; i++) {
                if (dotenv_text_find(f->env_texts, f->nenv_texts, files[i]))
                        continue;
                struct dotenv_text t = {0};
                int r = dotenv_read_file(files[i], &t.text, &t.len);
                if (r < 0)
                        return r;
                t.path = xstrdup(files[i]);
                f->env_texts = xrealloc(f->env_texts, (f->nenv_texts + 1) * sizeof(*f->env_texts));
                f->env_texts[f->nenv_texts++] = t;
        }
        return 0;
}

/* Every env file a host reads (the fleet's, each host's, --env), read once
 * for the whole fleet: each host parses the same text, and so does
 * check_hosts before them.  A pipe (--env /dev/stdin) gives its text to one
 * read only: read per host, the first reader took the secrets and the
 * others found them unset (generated one nobody was told of, or refused a
 * required one after the base was read). */
static int read_env_files(const struct build_opts *o, struct fleet *f) {
        int r = read_env_list(f, f->env_files, f->nenv_files);
        for (size_t i = 0; i < f->nhosts && r >= 0; i++)
                r = read_env_list(f, f->hosts[i].env_files, f->hosts[i].nenv_files);
        if (r >= 0)
                r = read_env_list(f, o->env_files, o->nenv_files);
        return r;
}

/* Host h's job, as the check before the base is read and its build both
 * run it: command-line values apply to every host, fleet values below
 * them.  Its settings are the caller's to give (job.host). */
static struct host_run *host_run_new(const struct build_opts *o, struct fleet *f, struct fleet_host *h,
                                     const struct env *derived) {
        struct host_run *hr = xcalloc(1, sizeof(*hr));
        hr->ho = *o;
        add_files(hr, f->env_files, f->nenv_files, true);
        add_files(hr, h->env_files, h->nenv_files, false);
        add_files(hr, o->env_files, o->nenv_files, true);
        add_sets(hr, f->sets, f->set_lines, f->nsets, true);
        add_sets(hr, h->sets, h->set_lines, h->nsets, false);
        add_sets(hr, o->sets, NULL, o->nsets, true); /* --set: no line */
        hr->ho.env_files = hr->files;
        hr->ho.nenv_files = hr->nfiles;
        hr->ho.env_file_shared = hr->file_shared;
        hr->ho.sets = hr->sets;
        hr->ho.nsets = hr->nsets;
        hr->ho.sets_file = f->file;
        hr->ho.set_lines = hr->set_lines;
        hr->ho.set_shared = hr->set_shared;
        hr->ho.env_texts = f->env_texts;
        hr->ho.nenv_texts = f->nenv_texts;
        hr->ho.imager_json = NULL;
        hr->job = (struct build_job){
                .opts = &hr->ho,
                .role = h->role,
                .out = h->out,
                .derived = derived,
                .host_checked = true, /* settle_host */
                .shared_base_fd = -1,
                .fleet_name = f->name ? f->name : path_basename(f->file),
                .host_label = h->label,
                .source = h->source ? h->source : (o->source ? o->source : f->source),
                .source_shared = !h->source,
                .source_cache = &f->sources,
                .final_env = &h->final_env,
        };
        return hr;
}

/* Build host h up to its commit, which goes on running on its own thread
 * (*ret, for host_run_join).  Its image starts as a copy of base_fd, or
 * with adopt as that very file. */
static int build_host(const struct build_opts *o, struct fleet *f, struct fleet_host *h, int base_fd,
                      const char *base_path, bool adopt, const struct source_info *src, struct env *derived,
                      struct imager_item *item, bool dir_locked, struct host_run **ret) {
        struct host_run *hr = host_run_new(o, f, h, derived);
        struct build_job *job = &hr->job;
        *ret = NULL;
        /* with a dry run there was no check before: this is it */
        if (o->dry_run)
                job->generated = &h->generated;
        else {
                job->fixed_secrets = &h->generated;
                job->generated = &hr->unused;
        }
        job->shared_base_fd = base_fd;
        job->shared_base_path = base_path;
        job->adopt_base = adopt;
        job->shared_src = src;
        job->dropped = &h->dropped;
        job->imager_item = item;
        job->dir_locked = dir_locked;
        job->detach_finish = true;
        /* each host is built once: its job takes its settings over */
        job->host = h->settings;
        h->settings = (struct host_settings){0};
        log_info("== %s (%s, %s)", h->name, h->role, h->address);
        int r = build_run(job);
        job->derived = NULL; /* the caller's, and only the inputs phase reads it */
        if (r < 0) {
                host_run_free(hr);
                return r;
        }
        *ret = hr;
        return 0;
}

/* Hosts in build order: a host whose wiring needs another host's final
 * values (derive: -EAGAIN) waits for it, each round in the file's order. */
struct host_order {
        size_t next, given;
        bool progress;
};

/* The next host to go, its wiring in *derived (the caller frees it); NULL
 * once every host was given.  The caller marks it built before asking
 * again. */
static int next_host(struct fleet *f, struct host_order *it, struct fleet_host **h, struct env *derived) {
        *h = NULL;
        while (it->given < f->nhosts) {
                if (it->next == f->nhosts) {
                        if (!it->progress)
                                return log_error(EINVAL, f->file, "hosts' wiring refers to each other in a cycle");
                        it->next = 0;
                        it->progress = false;
                }
                struct fleet_host *c = &f->hosts[it->next++];
                if (c->built)
                        continue;
                int r = derive(f, c, derived);
                if (r == -EAGAIN) {
                        env_free(derived);
                        continue;
                }
                if (r < 0)
                        return r;
                it->progress = true;
                it->given++;
                *h = c;
                return 0;
        }
        return 0;
}

/* Every host's inputs and plan (its .env files, --source, compose files),
 * in build order, before the base is read: a host that cannot be built is
 * found before the hosts ahead of it have cost a build each.  Its secrets
 * are generated here, once; its build takes them over (fixed_secrets).
 * Quietly: the build says it all again. */
static int check_hosts(const struct build_opts *o, struct fleet *f) {
        struct host_order it = {0};
        struct fleet_host *h;
        struct env derived = {0};
        int r;
        double t0 = monotonic_s();
        log_quiet(true);
        while ((r = next_host(f, &it, &h, &derived)) >= 0 && h) {
                struct host_run *hr = host_run_new(o, f, h, &derived);
                hr->job.check_only = true;
                hr->job.generated = &h->generated;
                hr->job.host = h->settings; /* lent */
                _cleanup_free_ char *line = xasprintf("== %s (%s, %s)", h->name, h->role, h->address);
                log_quiet_context(line);
                r = build_run(&hr->job);
                log_quiet_context(NULL);
                hr->job.host = (struct host_settings){0};
                host_run_free(hr);
                env_free(&derived);
                if (r < 0)
                        break;
                h->built = true;
        }
        env_free(&derived);
        log_quiet(false);
        if (r >= 0)
                log_debug("every host's inputs and plan checked: %.2f s", monotonic_s() - t0);
        /* as they were: the build derives each host's wiring again */
        for (size_t i = 0; i < f->nhosts; i++) {
                f->hosts[i].built = false;
                env_free(&f->hosts[i].final_env);
        }
        return r;
}

static bool has_generated(const struct fleet *f) {
        for (size_t i = 0; i < f->nhosts; i++)
                if (f->hosts[i].generated.n)
                        return true;
        return false;
}

static int check_secrets_file(const char *dir, const struct fleet *f) {
        _cleanup_free_ char *path = xasprintf("%s/secrets.env", dir);
        if (has_generated(f) && access(path, F_OK) == 0)
                return log_error(EEXIST, path, "exists; use --force to overwrite");
        return 0;
}

static int write_secrets(const char *dir, struct fleet *f, struct fleet_run *run, bool force) {
        _cleanup_free_ char *path = xasprintf("%s/secrets.env", dir);
        if (!has_generated(f)) {
                /* an earlier fleet's (the --force check let it be): its
                 * secrets are those of the images just replaced */
                if (force && unlink(path) < 0 && errno != ENOENT)
                        return log_error(errno, path, "cannot remove the previous fleet's secrets: %m");
                return 0;
        }
        int r = force ? 0 : check_secrets_file(dir, f);
        if (r < 0)
                return r;
        struct buf b = {0};
        for (size_t i = 0; i < f->nhosts; i++) {
                struct fleet_host *h = &f->hosts[i];
                if (!h->generated.n)
                        continue;
                size_t len;
                char *text = env_serialize(&h->generated, &len);
                buf_printf(&b, "# host %s (role %s)\n", h->name, h->role);
                buf_append(&b, text, len);
                explicit_bzero(text, len);
                free(text);
        }
        r = output_write_file_atomic(path, b.data, b.len, 0600);
        explicit_bzero(b.data, b.len);
        buf_free(&b);
        if (r >= 0) {
                remember(run, path);
                output_track_temp(path); /* until the fleet is done, like its images */
                log_info("Generated secrets saved to %s (keep it safe)", path);
        }
        return r;
}

/* Only what is still this fleet's: another fleet into the same directory
 * (--force) may have replaced an image since, and that one is not ours to
 * remove; its companions came with it, in one commit (output.c). */
static void undo(struct fleet_run *run) {
        static const char *const suffixes[] = {"", ".bmap", ".sha256", NULL};
        for (size_t i = 0; i < run->nwritten; i++) {
                output_untrack_temp(run->written[i]);
                if (!path_is(run->written[i], run->ids[i].st_dev, run->ids[i].st_ino)) {
                        log_info("Kept %s: another build replaced it", run->written[i]);
                        continue;
                }
                for (const char *const *s = suffixes; *s; s++) {
                        _cleanup_free_ char *p = xasprintf("%s%s", run->written[i], *s);
                        unlink(p);
                }
                /* a host's "Wrote" may come after another's error */
                log_info("Removed %s: the fleet failed", run->written[i]);
        }
}

/* One of extract_shared_base's files, unless never made (fd < 0). */
static void drop_hidden(int fd, const char *tmp) {
        if (fd < 0)
                return;
        close(fd);
        unlink(tmp);
        output_untrack_temp(tmp);
}

/* Decompress the base once into a hidden temporary in DIR, and with two
 * hosts or more a second one beside it, written from the same buffers
 * (source_opts.tee): the first host built takes that over as its image, the
 * last host the base, and the hosts between clone the base.  Two writes of
 * what the decoder has in memory cost less than a copy of the file after
 * it: with two hosts, nothing is copied.  *fd, *tmp, *first_fd and
 * *first_tmp are set (for the caller to drop) as soon as each file exists. */
static int extract_shared_base(const struct build_opts *o, const struct fleet *f, int *fd, char **tmp,
                               int *first_fd, char **first_tmp, struct source_info *src) {
        /* Each is named for the host that will take it over, and so is an
         * error writing it (a full disk). */
        *fd = output_create_temp(f->hosts[f->nhosts - 1].out, tmp);
        if (*fd < 0)
                return *fd;
        if (f->nhosts > 1) {
                *first_fd = output_create_temp(f->hosts[0].out, first_tmp);
                if (*first_fd < 0)
                        return *first_fd;
        }
        /* Hosts take these files over as their images: when that is a raw
         * output (the fleet has one format), it will be synced, so its
         * writeback starts now, beside the decoding.  With hosts between
         * the first and the last, the base is written for copying. */
        struct source_opts so = {
                .no_cache = o->no_cache,
                .quiet = log_level == LOG_QUIET,
                .writeback = output_format_for(f->hosts[0].out) == OUT_RAW,
                .cloned = f->nhosts > 2,
                .tee = *first_fd >= 0,
                .tee_fd = *first_fd,
        };
        /* a base every host would refuse is not kept in the cache */
        struct build_base accept = {.path = *tmp, .fd = *fd, .name = o->base};
        so.cache_accept = build_accept_base;
        so.cache_accept_arg = &accept;
        log_info("Reading %s (once for %zu hosts)", o->base, f->nhosts);
        return source_extract(o->base, *fd, &so, src);
}

/* --imager-json may name none of the fleet's inputs or outputs: written
 * last, it would replace whatever it names. */
static int check_imager_json(const struct build_opts *o, const struct fleet *f) {
        static const char *const ours[] = {"", ".bmap", ".sha256"};
        char **others = NULL;
        size_t n = 0;
        strv_push(&others, &n, o->base);
        strv_push(&others, &n, o->fleet);
        if (o->host_file)
                strv_push(&others, &n, o->host_file);
        for (size_t i = 0; i < o->nenv_files; i++)
                strv_push(&others, &n, o->env_files[i]);
        for (size_t i = 0; i < f->nenv_files; i++)
                strv_push(&others, &n, f->env_files[i]);
        for (size_t i = 0; i < f->nhosts; i++) {
                for (size_t k = 0; k < f->hosts[i].nenv_files; k++)
                        strv_push(&others, &n, f->hosts[i].env_files[k]);
                for (size_t k = 0; k < ARRAY_SIZE(ours); k++) {
                        _cleanup_free_ char *p = xasprintf("%s%s", f->hosts[i].out, ours[k]);
                        strv_push(&others, &n, p);
                }
        }
        _cleanup_free_ char *secrets = xasprintf("%s/secrets.env", o->out);
        strv_push(&others, &n, secrets);
        int r = output_check_extra(o->imager_json, "--imager-json", (const char *const *)others, n, o->force);
        strv_free(others, n);
        return r;
}

/* Whether sets gives key (KEY=VALUE strings). */
static bool sets_give(char *const *sets, size_t n, const char *key) {
        size_t kl = strlen(key);
        for (size_t i = 0; i < n; i++)
                if (!strncmp(sets[i], key, kl) && sets[i][kl] == '=')
                        return true;
        return false;
}

/* Whether the fleet file's own env: maps give a value some host's profile
 * holds secret: then the file holds a secret, as an --env file would. */
static bool fleet_file_has_secret(const struct fleet *f) {
        for (size_t i = 0; i < f->nhosts; i++) {
                const struct fleet_host *h = &f->hosts[i];
                for (size_t k = 0; k < h->profile.nenv; k++)
                        if (h->profile.env[k].secret && (sets_give(f->sets, f->nsets, h->profile.env[k].key) ||
                                                         sets_give(h->sets, h->nsets, h->profile.env[k].key)))
                                return true;
        }
        return false;
}

/* A shared value left out of every host (stackenv_input.dropped) reached
 * no container at all: said once, as a single build says it, with the
 * name a host's role knows close to it if there is one. */
static void warn_used_by_none(const struct fleet *f) {
        if (!f->nhosts)
                return;
        const struct env *first = &f->hosts[0].dropped;
        for (size_t i = 0; i < first->n; i++) {
                const struct env_var *v = &first->v[i];
                const char *meant = *v->value ? v->value : NULL;
                bool everywhere = true;
                for (size_t k = 1; k < f->nhosts && everywhere; k++) {
                        const struct env_var *o = env_find(&f->hosts[k].dropped, v->key);
                        everywhere = o != NULL;
                        if (o && *o->value && !meant)
                                meant = o->value;
                }
                if (!everywhere)
                        continue;
                char where[512];
                env_var_where(v, where, sizeof where);
                if (meant)
                        log_warn(where, "%s is used by no host's role; did you mean %s?%s", v->key, meant,
                                 strcasecmp(meant, v->key) ? "" : " (names are case-sensitive)");
                else if (env_key_reads_as_name(v->key) || (v->origin == ORIGIN_SET && !v->line))
                        log_warn(where, "%s is used by no host's role (no profile or compose file names it); a typo?",
                                 v->key);
                else
                        log_warn(where, "a variable no host's role uses, not named here since it does not read as a "
                                 "variable name (a pasted secret?); it is left out of every image");
        }
}

int fleet_build(const struct build_opts *o) {
        if (sets_per_host(&o->host))
                return log_error(EUSAGE, o->fleet,
                                 "--hostname, --ip, --gateway and --model are per host: set them in the fleet file");
        struct fleet f = {0};
        struct fleet_run run = {.dir_lock = -1};
        struct host_run *pending = NULL; /* the last host whose commit may still run */
        struct imager_item *items = NULL; /* --imager-json: one per host, in the file's order */
        int base_fd = -1, first_fd = -1, r;
        _cleanup_free_ char *base_tmp = NULL, *first_tmp = NULL;
        struct source_info src = {0};
        struct host_settings defaults = {0}; /* --host FILE: every host's, below the fleet file's */
        struct host_settings given = {0};    /* the command line's, above every host's */
        bool make_dir = false, made_dir = false;
        if ((r = fleet_parse(o->fleet, &f)) < 0)
                goto out;
        if (o->host_file &&
            ((r = host_load_file(o->host_file, &defaults)) < 0 || (r = check_host_defaults(o->host_file, &defaults)) < 0))
                goto out;
        /* What every host may share is read once, not once per host: a
         * password, key or Wi-Fi passphrase given as /dev/stdin reaches the
         * first read only (and a weak password's warning is said once).
         * The password's hash is then the same in each image; the Wi-Fi key
         * is derived for each host, with its SSID. */
        host_merge(&given, &o->host);
        if ((r = host_read_files(&given, o->allow_weak)) < 0 || (r = host_read_files(&defaults, o->allow_weak)) < 0 ||
            (r = host_read_files(&f.shared, o->allow_weak)) < 0)
                goto out;
        struct stat st;
        if (stat(o->out, &st) < 0) {
                if (errno != ENOENT) {
                        r = log_error(errno, o->out, "cannot create the output directory: %s", strerror(errno));
                        goto out;
                }
                make_dir = !o->dry_run; /* once everything below is checked */
        } else if (!S_ISDIR(st.st_mode)) {
                r = log_error(ENOTDIR, o->out, "with --fleet, -o names a directory");
                goto out;
        }
        /* Validate every host before reading the base: roles, host settings,
         * models, refs. */
        for (size_t i = 0; i < f.nhosts; i++) {
                struct fleet_host *h = &f.hosts[i];
                _cleanup_free_ char *path = NULL, *label = xasprintf("host %s", h->name);
                if ((r = profile_find(h->role, o->fleet, h->line, label, EINVAL, &path)) < 0 ||
                    (r = profile_load(path, &h->profile)) < 0)
                        goto out;
                h->out = xasprintf("%s/%s.%s", o->out, h->name, f.format ? f.format : "img");
                /* an image left by an earlier fleet is refused now, not
                 * once the base has been read (a new DIR holds none) */
                if (!make_dir && !o->dry_run && (r = output_check(h->out, o->base, o->force)) < 0)
                        goto out;
                if ((r = settle_host(o, &f, &defaults, &given, h)) < 0 ||
                    (r = model_check(host_where(&h->settings, HF_MODEL), h->settings.model, &h->profile)) < 0)
                        goto out;
        }
        if (fleet_file_has_secret(&f))
                secret_file_check_mode(o->fleet);
        /* every host has the fleet's one format */
        if (f.nhosts && (r = compress_check_level(output_format_for(f.hosts[0].out), o->compression_level,
                                                  f.hosts[0].out)) < 0)
                goto out;
        for (size_t i = 0; i < f.nhosts; i++) {
                struct fleet_host *h = &f.hosts[i];
                for (size_t k = 0; k < h->profile.nenv; k++) {
                        const char *tpl = h->profile.env[k].fleet;
                        for (const char *d = tpl ? strstr(tpl, "${") : NULL; d; d = strstr(d + 2, "${")) {
                                _cleanup_free_ char *role = xstrndup(d + 2, strcspn(d + 2, "."));
                                struct fleet_host *other;
                                if (!host_with_role(&f, role, &other)) {
                                        r = log_error_at(EINVAL, o->fleet, h->line,
                                                         "host %s (role %s): %s needs a host with role '%s', and the "
                                                         "fleet has none; add one or use role app-standalone",
                                                         h->name, h->role, h->profile.env[k].key, role);
                                        goto out;
                                }
                                if (other) {
                                        r = log_error_at(EINVAL, o->fleet, other->line,
                                                         "host %s (role %s): %s needs the host with role '%s', and "
                                                         "the fleet has more than one (%s is the second); which is "
                                                         "meant is a guess: keep one per fleet file",
                                                         h->name, h->role, h->profile.env[k].key, role, other->name);
                                        goto out;
                                }
                        }
                }
        }

        if ((r = read_env_files(o, &f)) < 0)
                goto out;
        /* a dry run makes the same checks as it goes, and builds nothing */
        if (!o->dry_run && (r = check_hosts(o, &f)) < 0)
                goto out;
        /* write_secrets' refusal, before the fleet is built for nothing */
        if (!o->dry_run && !make_dir && !o->force && (r = check_secrets_file(o->out, &f)) < 0)
                goto out;

        /* Made here, not before: a refused fleet file leaves no trace.
         * Before --imager-json's check, which compares paths in DIR. */
        if (make_dir) {
                if ((r = output_mkdir(o->out, 0755)) < 0) {
                        r = log_error(-r, o->out, "cannot create the output directory: %s", strerror(-r));
                        goto out;
                }
                made_dir = true;
        }
        if (o->imager_json && (r = check_imager_json(o, &f)) < 0)
                goto out;
        if (o->imager_json)
                items = xcalloc(f.nhosts, sizeof(*items));
        if (!o->dry_run)
                run.dir_lock = output_lock_dir(o->out);
        /* before the base takes its room: a killed fleet's copies may hold it */
        for (size_t i = 0; i < f.nhosts && !o->dry_run; i++)
                output_sweep(f.hosts[i].out);
        /* A dry run prints each host's payload, nothing written: the base
         * is never decoded (each host's dry run reads a raw or cached one
         * in place). */
        if (!o->dry_run && (r = extract_shared_base(o, &f, &base_fd, &base_tmp, &first_fd, &first_tmp, &src)) < 0)
                goto out;

        struct host_order order = {0};
        struct fleet_host *h;
        struct env derived = {0};
        while ((r = next_host(&f, &order, &h, &derived)) >= 0 && h) {
                struct host_run *hr = NULL;
                /* the first host built takes the second copy over, the
                 * last the first */
                bool first = order.given == 1 && first_fd >= 0;
                r = build_host(o, &f, h, first ? first_fd : base_fd, first ? first_tmp : base_tmp,
                               first || order.given == f.nhosts, &src, &derived,
                               items ? &items[h - f.hosts] : NULL, run.dir_lock >= 0, &hr);
                env_free(&derived);
                if (r < 0)
                        break;
                /* Two commits at a time: this host's has started, the one
                 * before it must end before the next host starts. */
                r = host_run_join(pending, &run);
                pending = hr;
                if (r < 0)
                        break;
                h->built = true;
        }
        env_free(&derived);
        if (r < 0)
                goto out;
        r = host_run_join(pending, &run);
        pending = NULL;
        if (r >= 0)
                warn_used_by_none(&f);
        if (r >= 0 && o->dry_run)
                goto out;
        if (r >= 0)
                r = write_secrets(o->out, &f, &run, o->force);
        if (r >= 0 && items) {
                r = imager_write_json_items(o->imager_json, items, f.nhosts);
                if (r >= 0)
                        log_info("Raspberry Pi Imager list of %zu images written to %s (rpi-imager --repo %s)",
                                 f.nhosts, o->imager_json, o->imager_json);
        }
        if (r >= 0)
                log_info("Fleet of %zu hosts written to %s", f.nhosts, o->out);
out:
        if (pending) /* nothing may be writing while the fleet is undone */
                (void)host_run_join(pending, &run);
        /* taken over by now, unless the fleet failed first */
        drop_hidden(base_fd, base_tmp);
        drop_hidden(first_fd, first_tmp);
        if (r < 0)
                undo(&run); /* a failed fleet leaves no images behind */
        else { /* the fleet's now: an interrupt no longer removes them */
                output_finished();
                for (size_t i = 0; i < run.nwritten; i++)
                        output_untrack_temp(run.written[i]);
        }
        if (run.dir_lock >= 0)
                close(run.dir_lock); /* and the lock with it */
        if (made_dir) {
                output_untrack_temp(o->out);
                /* nor the directory it made for them; rmdir removes only an
                 * empty one, so whatever else was put there meanwhile stays */
                if (r < 0 && rmdir(o->out) < 0 && errno != ENOTEMPTY && errno != EEXIST)
                        log_warn(o->out, "cannot remove the output directory this fleet created: %s", strerror(errno));
        }
        host_free(&defaults);
        host_free(&given);
        for (size_t i = 0; items && i < f.nhosts; i++)
                imager_item_free(&items[i]);
        free(items);
        strv_free(run.written, run.nwritten);
        free(run.ids);
        fleet_free(&f);
        return r;
}
