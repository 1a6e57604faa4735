/* SPDX-License-Identifier: GPL-3.0-or-later */
/* The fleet file (docs/fleet.md): read with yamltree into struct fleet,
 * every key checked where it stands, and the wiring between its hosts
 * (a profile's fleet: templates, "${observability.host}"). */
#include "fleet_private.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "profile.h"
#include "secret.h"
#include "util.h"
#include "yamltree.h"

static void layer_free(struct fleet_layer *l) {
        host_free(&l->hs);
        strv_clear_secret(&l->sets, &l->nsets);
        free(l->set_lines);
        strv_clear(&l->env_files, &l->nenv_files);
        free(l->source);
}

void fleet_free(struct fleet *f) {
        for (size_t i = 0; i < f->nhosts; i++) {
                struct fleet_host *h = &f->hosts[i];
                free(h->name);
                free(h->role);
                free(h->address);
                layer_free(&h->own);
                host_free(&h->settings);
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
        strv_clear(&f->dns, &f->ndns);
        free(f->format);
        layer_free(&f->all);
        free(f->gateway_where);
        free(f->dns_where);
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

void fleet_push_line(unsigned **lines, size_t n, unsigned line) {
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
                if (!env_key_valid(n->keys[i]))
                        return env_log_bad_key(file, n->key_lines[i], what, n->keys[i]);
                if (n->items[i]->kind != Y_SCALAR)
                        return log_error_at(EINVAL, file, n->items[i]->line, "%s.%s: must be a string", what,
                                            n->keys[i]);
                /* `KEY: ~` is YAML's null, as `KEY:` is: empty, not "~" */
                const char *v = ynode_is_null(n->items[i]) ? "" : n->items[i]->scalar;
                _cleanup_free_secret_ char *kv = xasprintf("%s=%s", n->keys[i], v);
                fleet_push_line(lines, *nsets, n->key_lines[i]);
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
                        _cleanup_free_ char *p = path_relative_to(file, v[i]);
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

/* Map n's keys that every level has (source:, env:, env_files: and the
 * host settings) into l; own: the level's other keys, read by its caller. */
static int parse_layer(const char *file, const struct ynode *n, const char *const *own, struct fleet_layer *l) {
        struct ynode *v;
        int r;
        if ((v = ynode_get(n, "source"))) {
                _cleanup_free_ char *s = NULL;
                if ((r = ynode_string(file, "source", v, &s)) < 0)
                        return r;
                l->source = path_relative_to(file, s);
        }
        if ((r = env_map(file, "env", ynode_get(n, "env"), &l->sets, &l->nsets, &l->set_lines)) < 0 ||
            (r = file_list(file, "env_files", ynode_get(n, "env_files"), &l->env_files, &l->nenv_files)) < 0)
                return r;
        struct ynode *view = view_without(n, own);
        r = host_from_yaml(file, view, &l->hs);
        view_free(view);
        return r;
}

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
        /* a profile file, like every other file the fleet file names, is
         * beside it, wherever the build runs from */
        if (profile_names_file(h->role)) {
                char *rel = path_relative_to(file, h->role);
                free(h->role);
                h->role = rel;
        }
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
        return parse_layer(file, n, host_only, &h->own);
}

int fleet_parse(const char *file, const char *text, size_t len, struct fleet *f) {
        struct ynode *root = NULL;
        f->file = file;
        int r = yaml_load(file, text, len, &root);
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
        if ((r = parse_layer(file, root, top_only, &f->all)) < 0)
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
static struct fleet_host *host_with_role(const struct fleet *f, const char *role, struct fleet_host **other) {
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

int fleet_check_wiring(const struct fleet *f) {
        for (size_t i = 0; i < f->nhosts; i++) {
                const struct fleet_host *h = &f->hosts[i];
                for (size_t k = 0; k < h->profile.nenv; k++) {
                        const char *tpl = h->profile.env[k].fleet;
                        for (const char *d = tpl ? strstr(tpl, "${") : NULL; d; d = strstr(d + 2, "${")) {
                                _cleanup_free_ char *role = xstrndup(d + 2, strcspn(d + 2, "."));
                                struct fleet_host *other;
                                if (!host_with_role(f, role, &other))
                                        return log_error_at(EINVAL, f->file, h->line,
                                                            "host %s (role %s): %s needs a host with role '%s', "
                                                            "and the fleet has none; add one or use role "
                                                            "app-standalone",
                                                            h->name, h->role, h->profile.env[k].key, role);
                                if (other)
                                        return log_error_at(EINVAL, f->file, other->line,
                                                            "host %s (role %s): %s needs the host with role '%s', "
                                                            "and the fleet has more than one (%s is the second); "
                                                            "which is meant is a guess: keep one per fleet file",
                                                            h->name, h->role, h->profile.env[k].key, role,
                                                            other->name);
                        }
                }
        }
        return 0;
}

int fleet_derive(struct fleet *f, struct fleet_host *h, struct env *derived) {
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
