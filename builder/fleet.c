/* SPDX-License-Identifier: GPL-3.0-or-later */
/* `dimimage build --fleet`: every host checked before the base is read,
 * then built in the order its wiring needs, each from one decoding of the
 * base, two commits at a time; a fleet that fails is undone whole. */
#include "fleet.h"
#include "fleet_private.h"

#include <dirent.h>
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
        /* --force: the files of DIR the fleet replaces, kept (output_keep)
         * until it is done, and put back if it fails */
        char *keep_dir;
        char **kept;
        size_t nkept;
};

/* Images in DIR that are no host's of this fleet: an earlier fleet's
 * (a host renamed or dropped), whose wiring and secrets are not this one's
 * (secrets.env now lists this fleet's).  Flashed with the others by a
 * glob of DIR, such a Pi could not reach its peers: said once, left alone. */
static void warn_foreign_images(const char *dir, const char *base, const struct fleet *f) {
        DIR *d = opendir(dir);
        if (!d)
                return;
        struct stat bst;
        bool have_base = base && stat(base, &bst) == 0;
        struct buf names = {0};
        size_t n = 0;
        for (struct dirent *de; (de = readdir(d));) {
                if (de->d_name[0] == '.' || output_format_for(de->d_name) == OUT_UNKNOWN)
                        continue;
                bool ours = false;
                for (size_t i = 0; i < f->nhosts && !ours; i++)
                        ours = !strcmp(path_basename(f->hosts[i].out), de->d_name);
                /* a build's image has its OUT.sha256; the base (or an image
                 * from elsewhere) is not another fleet's */
                _cleanup_free_ char *path = xasprintf("%s/%s", dir, de->d_name);
                _cleanup_free_ char *sums = xasprintf("%s.sha256", path);
                struct stat st;
                if (!ours && (access(sums, F_OK) < 0 ||
                              (have_base && stat(path, &st) == 0 && st.st_dev == bst.st_dev && st.st_ino == bst.st_ino)))
                        continue;
                if (!ours && n++ < 5)
                        buf_printf(&names, "%s%s", n > 1 ? ", " : "", de->d_name);
        }
        closedir(d);
        if (n)
                log_warn(dir, "holds %zu image%s no host of this fleet has (%s%s): an earlier fleet's, wired and "
                              "with secrets not this one's; remove %s before flashing %s/*",
                         n, n > 1 ? "s" : "", (char *)names.data, n > 5 ? ", ..." : "", n > 1 ? "them" : "it", dir);
        buf_free(&names);
}

/* Each host's image and its companions, and secrets.env, as DIR has them
 * before a --force fleet replaces them. */
static void keep_one(struct fleet_run *run, const char *path) {
        char *kept = NULL;
        if (output_keep(path, run->keep_dir, &kept) == 0 && kept)
                strv_push(&run->kept, &run->nkept, kept);
        free(kept);
}

static void keep_previous(const struct build_opts *o, const struct fleet *f, struct fleet_run *run) {
        if (!(run->keep_dir = output_keep_dir(o->out)))
                return;
        for (size_t i = 0; i < f->nhosts; i++) {
                keep_one(run, f->hosts[i].out);
                for (const char *const *c = output_companions; *c; c++) {
                        _cleanup_free_ char *p = xasprintf("%s%s", f->hosts[i].out, *c);
                        keep_one(run, p);
                }
        }
        _cleanup_free_ char *secrets = xasprintf("%s/secrets.env", o->out);
        keep_one(run, secrets);
}

/* The fleet done (restore false) or undone. */
static void end_keeping(struct fleet_run *run, bool restore) {
        for (size_t i = 0; i < run->nkept; i++)
                output_kept_done(run->kept[i], restore);
        strv_clear(&run->kept, &run->nkept);
        if (run->keep_dir) {
                /* a kept file another build's took the name of stays there */
                if (rmdir(run->keep_dir) < 0 && errno != ENOTEMPTY && errno != EEXIST)
                        log_warn(run->keep_dir, "cannot remove: %s", strerror(errno));
                output_untrack_temp(run->keep_dir);
                free(run->keep_dir);
                run->keep_dir = NULL;
        }
}

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
        strv_clear(&hr->files, &hr->nfiles);
        strv_clear_secret(&hr->sets, &hr->nsets);
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
                fleet_push_line(&hr->set_lines, hr->nsets, lines ? lines[i] : 0);
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

/* A --host file's per-host key, named at its line. */
static int check_host_defaults(const char *file, const struct host_settings *d) {
        static const struct {
                enum host_field f;
                const char *key;
        } per_host[] = {{HF_HOSTNAME, "hostname"}, {HF_IP, "ip"}, {HF_GATEWAY, "gateway"}, {HF_MODEL, "model"}};
        const bool set[] = {d->hostname, d->ip, d->gateway, d->model};
        for (size_t i = 0; i < ARRAY_SIZE(per_host); i++)
                if (set[i])
                        return log_error(EUSAGE, d->where[per_host[i].f] ? d->where[per_host[i].f] : file,
                                         "%s is per host with --fleet (as are hostname, ip, gateway and model): set "
                                         "it in the fleet file (hosts[].name, address, model; network.gateway)",
                                         per_host[i].key);
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
        host_merge(hs, &f->all.hs);
        host_merge(hs, &h->own.hs);
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
        int r = read_env_list(f, f->all.env_files, f->all.nenv_files);
        for (size_t i = 0; i < f->nhosts && r >= 0; i++)
                r = read_env_list(f, f->hosts[i].own.env_files, f->hosts[i].own.nenv_files);
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
        add_files(hr, f->all.env_files, f->all.nenv_files, true);
        add_files(hr, h->own.env_files, h->own.nenv_files, false);
        add_files(hr, o->env_files, o->nenv_files, true);
        add_sets(hr, f->all.sets, f->all.set_lines, f->all.nsets, true);
        add_sets(hr, h->own.sets, h->own.set_lines, h->own.nsets, false);
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
                .source = h->own.source ? h->own.source : (o->source ? o->source : f->all.source),
                .source_shared = !h->own.source,
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

/* Each host left waits for a value of another's environment: say which. */
static int wiring_cycle(const struct fleet *f) {
        struct buf waiting = {0};
        unsigned line = 0;
        for (size_t i = 0; i < f->nhosts; i++)
                if (!f->hosts[i].built) {
                        buf_printf(&waiting, "%s%s (%s, line %u)", waiting.len ? ", " : "", f->hosts[i].name,
                                   f->hosts[i].profile.name, f->hosts[i].line);
                        line = line ? line : f->hosts[i].line;
                }
        int r = log_error_at(EINVAL, f->file, line,
                             "the wiring of hosts %s is a cycle: each one's profile has a fleet: template with a "
                             "${ROLE.env.KEY} of another (or of itself), so none can be built first; change one of "
                             "those templates",
                             (char *)waiting.data);
        buf_free(&waiting);
        return r;
}

/* The next host to go, its wiring in *derived (the caller frees it); NULL
 * once every host was given.  The caller marks it built before asking
 * again. */
static int next_host(struct fleet *f, struct host_order *it, struct fleet_host **h, struct env *derived) {
        *h = NULL;
        while (it->given < f->nhosts) {
                if (it->next == f->nhosts) {
                        if (!it->progress)
                                return wiring_cycle(f);
                        it->next = 0;
                        it->progress = false;
                }
                struct fleet_host *c = &f->hosts[it->next++];
                if (c->built)
                        continue;
                int r = fleet_derive(f, c, derived);
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
        struct buf b = { .secret = true };
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
        /* tracked until the fleet is done, like its images */
        r = output_write_file_atomic(path, b.data, b.len, 0600, true);
        buf_free_secret(&b);
        if (r >= 0) {
                remember(run, path);
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
        for (size_t i = 0; i < f->all.nenv_files; i++)
                strv_push(&others, &n, f->all.env_files[i]);
        for (size_t i = 0; i < f->nhosts; i++) {
                for (size_t k = 0; k < f->hosts[i].own.nenv_files; k++)
                        strv_push(&others, &n, f->hosts[i].own.env_files[k]);
                for (size_t k = 0; k < ARRAY_SIZE(ours); k++) {
                        _cleanup_free_ char *p = xasprintf("%s%s", f->hosts[i].out, ours[k]);
                        strv_push(&others, &n, p);
                }
        }
        _cleanup_free_ char *secrets = xasprintf("%s/secrets.env", o->out);
        strv_push(&others, &n, secrets);
        int r = output_check_extra(o->imager_json, "--imager-json", (const char *const *)others, n, o->force);
        strv_clear(&others, &n);
        return r;
}

/* DIR/secrets.env given back as an env file (the fleet file's or --env):
 * a fleet that generates nothing removes it, one that does replaces it,
 * and either way the secrets of the images it held are gone. */
static int check_secrets_not_input(const struct build_opts *o, const struct fleet *f) {
        _cleanup_free_ char *path = xasprintf("%s/secrets.env", o->out);
        const char *hit = NULL, *what = "--env";
        for (size_t i = 0; i < o->nenv_files && !hit; i++)
                if (output_same_file(o->env_files[i], path))
                        hit = o->env_files[i];
        for (size_t i = 0; i < f->all.nenv_files && !hit; i++)
                if (output_same_file(f->all.env_files[i], path))
                        hit = f->all.env_files[i], what = "env_files";
        for (size_t i = 0; i < f->nhosts && !hit; i++)
                for (size_t k = 0; k < f->hosts[i].own.nenv_files && !hit; k++)
                        if (output_same_file(f->hosts[i].own.env_files[k], path))
                                hit = f->hosts[i].own.env_files[k], what = "env_files";
        if (!hit)
                return 0;
        return log_error(EINVAL, hit, "%s names the fleet's %s, which this build replaces or removes; move it "
                         "elsewhere first and give its new path, or choose another -o",
                         what, path);
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
                        if (h->profile.env[k].secret && (sets_give(f->all.sets, f->all.nsets, h->profile.env[k].key) ||
                                                         sets_give(h->own.sets, h->own.nsets, h->profile.env[k].key)))
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
                else if (env_var_nameable(v))
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
        if ((r = fleet_parse(o->fleet, NULL, 0, &f)) < 0)
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
            (r = host_read_files(&f.all.hs, o->allow_weak)) < 0)
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
        if ((r = fleet_check_wiring(&f)) < 0)
                goto out;
        if ((r = read_env_files(o, &f)) < 0 || (r = check_secrets_not_input(o, &f)) < 0)
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
        if (!o->dry_run && o->force && !made_dir)
                keep_previous(o, &f, &run);
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
        if (r >= 0 && !o->dry_run)
                warn_foreign_images(o->out, o->base, &f);
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
        if (r < 0) {
                undo(&run); /* a failed fleet leaves no images behind */
                end_keeping(&run, true); /* and those it replaced as they were */
        } else { /* the fleet's now: an interrupt no longer removes them */
                output_finished();
                for (size_t i = 0; i < run.nwritten; i++)
                        output_untrack_temp(run.written[i]);
                end_keeping(&run, false);
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
        strv_clear(&run.written, &run.nwritten);
        free(run.ids);
        fleet_free(&f);
        return r;
}
