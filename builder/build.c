/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "build.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "apply.h"
#include "cache.h"
#include "compose.h"
#include "decoder.h"
#include "disk.h"
#include "fleet.h"
#include "imager.h"
#include "log.h"
#include "model.h"
#include "output.h"
#include "payload.h"
#include "plan.h"
#include "profile.h"
#include "stackenv.h"
#include "util.h"
#include "yamltree.h"

struct build_ctx {
        struct build_job *job;
        const struct build_opts *o;
        struct profile profile;
        struct env env;
        struct compose_info *compose;
        size_t ncompose;
        char *services; /* compose_started_services() */
        struct payload payload;
        struct output out;
        bool out_begun;
        struct source_info src;
        struct disk_layout layout;
        struct base_files base;
        enum os_flavour os;
        bool probed;   /* probe_base ran on this copy of the base: probe_r is its result */
        int probe_r;
        bool rebuilt; /* a damaged cache hit (or wrong remembered sum) was dropped: the base read again */
};

/* The context lives on the heap (a detached commit keeps it): freed here. */
static void ctx_free(struct build_ctx *c) {
        profile_free(&c->profile);
        env_free(&c->env);
        for (size_t i = 0; i < c->ncompose; i++)
                compose_info_free(&c->compose[i]);
        free(c->compose);
        free(c->services);
        payload_free(&c->payload);
        base_files_free(&c->base);
        if (c->out_begun)
                output_abort(&c->out);
        (void)source_drop(&c->src);
        free(c);
}

/* Back to where phase plan left off, to build again from the base. */
static void ctx_rewind(struct build_ctx *c) {
        payload_free(&c->payload);
        base_files_free(&c->base);
        if (c->out_begun)
                output_abort(&c->out);
        c->out_begun = false;
        c->out = (struct output){0};
        c->src = (struct source_info){0};
        c->layout = (struct disk_layout){0};
        c->os = OS_UNKNOWN;
        c->probed = false;
}

/* ---- phase: inputs ---- */

static int cmp_str(const void *a, const void *b) {
        return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Each overlay the profile names is a directory of the data tree: else the
 * profile is named with the overlay, and what there is (a typo in a custom
 * profile showed up only as its compose files being nowhere). */
static int check_overlays(const struct build_ctx *c) {
        for (size_t i = 0; i < c->profile.noverlays; i++) {
                _cleanup_free_ char *dir = xasprintf("%s/overlays/%s", data_dir(), c->profile.overlays[i]);
                struct stat st;
                if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
                        continue;
                _cleanup_free_ char *top = xasprintf("%s/overlays", data_dir());
                char **names = NULL;
                size_t n = 0;
                DIR *d = opendir(top);
                for (struct dirent *de; d && (de = readdir(d));)
                        if (de->d_name[0] != '.')
                                strv_push(&names, &n, de->d_name);
                if (d)
                        closedir(d);
                if (n)
                        qsort(names, n, sizeof(*names), cmp_str);
                struct buf known = {0};
                for (size_t k = 0; k < n; k++)
                        buf_printf(&known, "%s%s", k ? ", " : "", names[k]);
                int r = log_error_at(EINVAL, c->profile.path, c->profile.overlay_lines[i],
                                     "overlays: '%s' is not an overlay in %s (there: %s)", c->profile.overlays[i], top, known.data ? (char *)known.data : "none");
                strv_clear(&names, &n);
                buf_free(&known);
                return r;
        }
        return 0;
}

/* The compose file as the image will hold it: the last overlay that has it. */
static char *find_compose(const struct build_ctx *c, const char *rel) {
        for (size_t i = c->profile.noverlays; i-- > 0;) {
                char *path = xasprintf("%s/overlays/%s%s/%s", data_dir(), c->profile.overlays[i], DIMDIM_HOME, rel);
                if (access(path, R_OK) == 0)
                        return path;
                free(path);
        }
        return NULL;
}

/* OpenObserve's arm64 image needs the CPU's AES instructions, which a Pi 3
 * or 4 lacks: there it exits at start with code 132, every restart
 * (openobserve/openobserve#3910).  Said when the model is given and the
 * image is still the profile's default. */
static void warn_no_aes(const struct build_ctx *c) {
        const char *model = c->job->host.model;
        const struct env_var *v = env_find(&c->env, "OPENOBSERVE_IMAGE");
        if (!model || model_has_aes(model) || !v || v->origin != ORIGIN_DEFAULT)
                return;
        log_warn(c->job->host_label ? c->job->host_label : "build",
                 "a %s has no AES instructions, which OpenObserve's image %s needs: it would exit at start (code 132); "
                 "set OPENOBSERVE_IMAGE to a build for it (an '-arm64-pi' tag of public.ecr.aws/zinclabs/openobserve) "
                 "or use a Pi 5",
                 model, v->value);
}

/* The files this build reads that its commit could replace or remove: an
 * earlier build's OUT.secrets.env given back as --env is the likely one,
 * and a rebuild that generates nothing would remove it, the only copy of
 * the secrets in the image outside it.  The base, output_check names. */
static int check_inputs_kept(const struct build_ctx *c, const char *profile) {
        const struct build_opts *o = c->o;
        const struct host_settings *h = &c->job->host;
        size_t n = 0;
        _cleanup_free_ struct output_input *in = xcalloc(5 + o->nenv_files + h->nssh_key_files, sizeof(*in));
        in[n++] = (struct output_input){profile, "--role"};
        in[n++] = (struct output_input){o->source, "--source"};
        in[n++] = (struct output_input){o->host_file, "--host"};
        in[n++] = (struct output_input){h->password_file, "--password-file"};
        in[n++] = (struct output_input){h->wifi_psk_file, "--wifi-psk-file"};
        for (size_t i = 0; i < o->nenv_files; i++)
                in[n++] = (struct output_input){o->env_files[i], "--env"};
        for (size_t i = 0; i < h->nssh_key_files; i++)
                in[n++] = (struct output_input){h->ssh_key_files[i], "--ssh-key"};
        return output_check_inputs(c->job->out, in, n);
}

static int phase_inputs(struct build_ctx *c) {
        struct build_job *j = c->job;
        const struct build_opts *o = c->o;
        int r;
        _cleanup_free_ char *ppath = NULL;
        /* a misspelt --role is a usage error, a host's a data error */
        if ((r = profile_find(j->role, j->host_label ? j->host_label : "build", 0, NULL,
                              j->host_label ? EINVAL : EUSAGE, &ppath)) < 0)
                return r;
        if ((r = check_inputs_kept(c, ppath)) < 0)
                return r;
        if ((r = profile_load(ppath, &c->profile)) < 0)
                return r;
        if (!j->host_checked && ((r = host_finalize(&j->host, c->o->allow_weak)) < 0 ||
                                 (r = model_check(host_where(&j->host, HF_MODEL), j->host.model, &c->profile)) < 0))
                return r;

        if ((r = check_overlays(c)) < 0)
                return r;
        c->compose = xcalloc(c->profile.ncompose, sizeof *c->compose);
        for (size_t i = 0; i < c->profile.ncompose; i++) {
                _cleanup_free_ char *file = find_compose(c, c->profile.compose[i]);
                if (!file)
                        return log_error_at(ENOENT, c->profile.path, c->profile.compose_lines[i],
                                            "compose file %s is in none of the overlays (%s)", c->profile.compose[i],
                                            data_dir());
                _cleanup_free_ char *text = NULL;
                size_t len;
                if ((r = yaml_read_file(file, &text, &len)) < 0)
                        return r;
                _cleanup_free_ char *image_path = xasprintf("%s/%s", DIMDIM_HOME, c->profile.compose[i]);
                if ((r = compose_scan(file, text, len, image_path, &c->compose[i])) < 0)
                        return r;
                c->ncompose++;
        }
        c->services = compose_started_services(c->compose, c->ncompose);
        struct stackenv_input si = {
                .profile = &c->profile,
                .env_files = o->env_files,
                .nenv_files = o->nenv_files,
                .env_texts = o->env_texts,
                .nenv_texts = o->nenv_texts,
                .sets = o->sets,
                .nsets = o->nsets,
                .sets_file = o->sets_file,
                .set_lines = o->set_lines,
                .env_file_shared = o->env_file_shared,
                .set_shared = o->set_shared,
                .dropped = j->dropped,
                .derived = j->derived,
                .fixed_secrets = j->fixed_secrets,
                .compose = c->compose,
                .ncompose = c->ncompose,
                .allow_weak = o->allow_weak,
        };
        int r2 = stackenv_resolve(&si, &c->env, j->generated);
        if (r2 >= 0)
                warn_no_aes(c);
        return r2;
}

/* ---- phase: plan ---- */

/* The variable that names a service's prebuilt image: DIMDIM_<SERVICE>_IMAGE. */
static char *image_var(const char *service) {
        struct buf b = {0};
        buf_puts(&b, "DIMDIM_");
        for (const char *s = service; *s; s++)
                buf_printf(&b, "%c", isalnum((unsigned char)*s) ? toupper((unsigned char)*s) : '_');
        buf_puts(&b, "_IMAGE");
        return (char *)b.data;
}

/* A service whose image the environment names (DIMDIM_API_IMAGE for "api")
 * runs prebuilt: its build context need not be in the image. */
static bool prebuilt(const struct build_ctx *c, const char *service) {
        _cleanup_free_ char *name = image_var(service);
        const struct env_var *v = env_find(&c->env, name);
        /* the profile's default names the image built from --source */
        return v && *v->value && v->origin != ORIGIN_DEFAULT;
}

static bool is_build_path(const struct compose_path *cp) {
        return cp->kind == PATH_BUILD_CONTEXT || cp->kind == PATH_DOCKERFILE;
}

/* The application source this build puts into the image.  A fleet's
 * source, given for every host, goes only to the hosts that build from it
 * (the app, not the OpenObserve Pi). */
static const char *job_source(const struct build_ctx *c) {
        const char *s = c->job->source ? c->job->source : c->o->source;
        if (!s || !c->job->source_shared)
                return s;
        for (size_t i = 0; i < c->ncompose; i++)
                if (c->compose[i].has_build)
                        return s;
        log_debug("role %s builds nothing: %s left out of this host's image", c->job->role, s);
        return NULL;
}

/* A compose path as resolved, for a message; not when a secret's value
 * went into it (a path written with ${DB_PASSWORD}: a mistake, and its
 * value must not reach the terminal). */
static const char *shown_path(const struct build_ctx *c, const struct compose_path *cp) {
        for (size_t i = 0; i < c->env.n; i++) {
                const struct env_var *v = &c->env.v[i];
                if (*v->value && stackenv_is_secret(&c->profile, v->key) && strstr(cp->resolved, v->value))
                        return "as resolved not shown: a secret's value is in it";
        }
        return cp->resolved;
}

/* A service to build with nothing to build it from: one line for all such
 * services, saying both ways out, so fixing the api does not just move the
 * error to the worker. */
static int log_unbuildable(const struct build_ctx *c, const struct compose_info *ci, const struct compose_path *cp) {
        struct buf sets = {0};
        for (size_t i = 0; i < c->ncompose; i++)
                for (size_t k = 0; k < c->compose[i].npaths; k++) {
                        const struct compose_path *p = &c->compose[i].paths[k];
                        if (!p->resolved || !is_build_path(p) || prebuilt(c, p->service) ||
                            payload_find(&c->payload, PART_ROOT, p->resolved))
                                continue;
                        _cleanup_free_ char *var = image_var(p->service);
                        _cleanup_free_ char *set = xasprintf(" --set %s=IMAGE", var);
                        if (!sets.data || !strstr((char *)sets.data, set)) /* a service has two build paths */
                                buf_puts(&sets, set);
                }
        const char *source = job_source(c);
        int r;
        if (source)
                r = log_error_at(EINVAL, ci->file, cp->line,
                                 "service '%s': %s %s (%s) is not in --source %s; give the application's source "
                                 "tree, or prebuilt images with%s",
                                 cp->service, compose_path_kind_name(cp->kind), cp->path, shown_path(c, cp), source,
                                 (char *)sets.data);
        else
                r = log_error_at(EINVAL, ci->file, cp->line,
                                 "service '%s': %s %s (%s) will not exist in the image; pass the application source "
                                 "with --source DIR|ARCHIVE, or prebuilt images with%s",
                                 cp->service, compose_path_kind_name(cp->kind), cp->path, shown_path(c, cp),
                                 (char *)sets.data);
        buf_free(&sets);
        return r;
}

static int check_compose_paths(struct build_ctx *c) {
        for (size_t i = 0; i < c->ncompose; i++) {
                struct compose_info *ci = &c->compose[i];
                /* paths written with ${VAR} resolve against the final environment */
                int r = compose_resolve_paths(ci, &c->env);
                if (r < 0)
                        return r;
                for (size_t k = 0; k < ci->npaths; k++) {
                        const struct compose_path *cp = &ci->paths[k];
                        if (!cp->resolved)
                                continue;
                        if (is_build_path(cp) && prebuilt(c, cp->service))
                                continue;
                        if (payload_find(&c->payload, PART_ROOT, cp->resolved))
                                continue;
                        if (is_build_path(cp))
                                return log_unbuildable(c, ci, cp);
                        return log_error_at(EINVAL, ci->file, cp->line,
                                            "service '%s': %s %s (%s) will not exist in the image", cp->service,
                                            compose_path_kind_name(cp->kind), cp->path, shown_path(c, cp));
                }
        }
        return 0;
}

static void plan_input_init(const struct build_ctx *c, struct plan_input *in) {
        *in = (struct plan_input){
                .profile = &c->profile,
                .env = &c->env,
                .host = &c->job->host,
                .data_dir = data_dir(),
                .source = job_source(c),
                .services = c->services,
                .source_cache = c->job->source_cache,
                .build_time = build_time(),
                .os = c->os,
                .base_name = c->o->base,
                .base_sha256 = c->src.sha256,
                .base_sha256_pending = c->src.sum_pending,
                .disk_id = c->layout.disk_id,
                .base = &c->base,
                .fleet_name = c->job->fleet_name,
                .allow_built_base = c->o->allow_built_base,
        };
}

static int phase_plan(struct build_ctx *c) {
        struct plan_input in;
        plan_input_init(c, &in);
        int r = plan_payload(&in, &c->payload);
        if (r < 0)
                return r;
        return check_compose_paths(c);
}

/* ---- phase: base ---- */

/* output_commit's last word on a cache hit checked beside the build */
static int check_base(void *arg) {
        struct build_ctx *c = arg;
        return source_verify(&c->src) ? -ESTALE : 0;
}

/* What every build asks of the decompressed base (path, open as fd; name
 * for messages): a Raspberry Pi OS disk layout and release. */
static int probe_into(const struct build_base *b, struct disk_layout *layout, struct base_files *base,
                      enum os_flavour *os) {
        /* the layout is the base's: refusals name it, not our temporary */
        int r = disk_probe_named(b->path, b->name, layout);
        if (r < 0)
                return r;
        struct apply_opts ao = {.image = b->path, .fd = b->fd, .name = b->name};
        if ((r = apply_read_base(&ao, layout, base)) < 0)
                return r;
        *os = plan_detect_os(base->os_release);
        if (*os == OS_UNKNOWN) {
                _cleanup_free_ char *pretty = os_release_get(base->os_release, "PRETTY_NAME");
                return log_error(EINVAL, b->name,
                                 "unsupported release '%s': dimimage supports Raspberry Pi OS Bookworm (Debian 12) and "
                                 "Trixie (Debian 13)",
                                 pretty ? pretty : "no /etc/os-release");
        }
        return 0;
}

/* Its messages are dropped: each host probes its own copy and says why. */
int build_accept_base(void *arg) {
        struct disk_layout layout = {0};
        struct base_files base = {0};
        enum os_flavour os;
        log_hold();
        int r = probe_into(arg, &layout, &base, &os);
        log_release(false);
        base_files_free(&base);
        return r;
}

/* Once per copy of the base: asked by the cache before it stores the
 * decompressed base (source_opts.cache_accept), then by phase_base, which
 * gets the same answer without reading the base again. */
static int probe_base(void *arg) {
        struct build_ctx *c = arg;
        if (!c->probed) {
                struct build_base b = {.path = c->out.tmp_raw, .fd = c->out.fd, .name = c->o->base};
                c->probe_r = probe_into(&b, &c->layout, &c->base, &c->os);
                c->probed = true;
        }
        return c->probe_r;
}

static int phase_base(struct build_ctx *c) {
        struct build_job *j = c->job;
        int r = output_begin(&c->out, j->out, c->o->base, c->o->force);
        if (r < 0)
                return r;
        c->out_begun = true;
        c->out.precommit = check_base;
        c->out.precommit_arg = c;
        c->out.no_bmap = c->o->no_bmap;
        /* a signal before output_finished undoes OUT (a fleet's: all its
         * hosts' images), so an interrupted run leaves none */
        c->out.track_committed = true;
        c->out.dir_locked = j->dir_locked;
        c->out.compression_level = c->o->compression_level;
        c->out.progress = !j->detach_finish;
        /* A compressed output's OUT.sha256 covers the compressed file; the
         * raw image's hash is only wanted for a Raspberry Pi Imager entry. */
        c->out.no_raw_sha256 = !c->o->imager_json && !j->imager_item;
        /* Only a raw output is synced: a compressed output's raw temporary is
         * deleted unsynced, so starting its writeback would be wasted I/O. */
        bool writeback = c->out.format == OUT_RAW;
        if (j->shared_base_fd >= 0) {
                c->src = *j->shared_src;
                r = j->adopt_base ? output_adopt(&c->out, j->shared_base_path, j->shared_base_fd) : 1;
                if (r == 0)
                        log_debug("%s: took over the fleet's decompressed base (no copy)", j->out);
                if (r > 0 && (r = source_clone(j->shared_base_fd, c->out.fd, c->src.bytes, writeback)) == 0)
                        log_debug("%s: copied the fleet's decompressed base", j->out);
                if (r < 0)
                        return r;
        } else {
                /* A cache hit's check, or a raw base's against its remembered
                 * sha256, runs beside the edits and the commit's hashing
                 * (check_base has the verdict); after a damaged one the base
                 * is read again and hashed on the way. */
                struct source_opts so = {.no_cache = c->o->no_cache,
                                         .fresh = c->rebuilt,
                                         .quiet = log_level == LOG_QUIET,
                                         .writeback = writeback,
                                         .verify_later = !c->rebuilt,
                                         .sum_later = !c->rebuilt,
                                         .cache_accept = probe_base,
                                         .cache_accept_arg = c};
                log_info("Reading %s", c->o->base);
                if ((r = source_extract(c->o->base, c->out.fd, &so, &c->src)) < 0)
                        return r;
        }
        if ((r = probe_base(c)) < 0)
                return r;
        log_info("Base: %s, Raspberry Pi OS %s, disk id %s", c->src.format, os_flavour_name(c->os),
                 c->layout.disk_id);
        return 0;
}

/* ---- phase: edit ---- */

/* output_commit's reader, at the manifest's placeholder for the base's
 * sha256: the sum computed beside the build, once it is known. */
static int fill_base_sum(void *arg, uint8_t data[OUTPUT_PATCH_BYTES]) {
        struct build_ctx *c = arg;
        double t0 = monotonic_s();
        if (source_verify(&c->src))
                return -ESTALE;
        log_debug("the commit waited %.2f s for the base's sha256", monotonic_s() - t0);
        memcpy(data, c->src.sha256, OUTPUT_PATCH_BYTES);
        return 0;
}

/* Where the placeholder landed in the image, for the commit to fill in. */
static int defer_base_sum(struct build_ctx *c, const struct apply_opts *ao) {
        struct ext4_span v[OUTPUT_PATCH_SPANS];
        size_t n;
        int r = apply_locate(ao, &c->layout, PLAN_MANIFEST, c->payload.pending_sum_at, OUTPUT_PATCH_BYTES, v,
                             OUTPUT_PATCH_SPANS, &n);
        if (r < 0)
                return r;
        struct output_patch *t = &c->out.patch;
        *t = (struct output_patch){.nspan = n, .fill = fill_base_sum, .arg = c};
        for (size_t i = 0; i < n; i++) {
                t->span[i].off = v[i].image_off;
                t->span[i].len = v[i].len;
                t->span[i].from = (size_t)(v[i].file_off - c->payload.pending_sum_at);
        }
        return 0;
}

/* OpenObserve publishes amd64 and arm64 images only: on a 32-bit base its
 * container would never start ("no matching manifest").  Once the base is
 * read: by the edits, or a dry run's checks. */
static void warn_armhf(const struct build_ctx *c) {
        if (c->base.armhf && env_find(&c->env, "OPENOBSERVE_IMAGE"))
                log_warn(c->o->base, "a 32-bit (armhf) Raspberry Pi OS, for which OpenObserve publishes no image: role "
                         "'%s' would never start it; use the 64-bit Raspberry Pi OS", c->profile.name);
}

static int phase_edit(struct build_ctx *c) {
        warn_armhf(c);
        struct plan_input in;
        plan_input_init(c, &in);
        int r = plan_base_edits(&in, &c->payload);
        if (r < 0)
                return r;
        payload_sort(&c->payload);
        struct apply_opts ao = {
                .image = c->out.tmp_raw,
                .fd = c->out.fd,
                .name = c->o->base,
                .mtime = build_time(),
                .grow = c->o->grow,
                .no_grow = c->o->no_grow,
        };
        log_info("Writing %zu entries for role %s", c->payload.n, c->profile.name);
        r = apply_payload(&ao, &c->layout, &c->payload);
        if (r >= 0 && c->payload.pending_sum_at)
                r = defer_base_sum(c, &ao);
        return r;
}

/* ---- phase: finish ---- */

/* output_commit's hook, once the sums are known: the Imager list is renamed
 * into place with OUT, so a failed build leaves no list either. */
static int describe_imager(void *arg, struct output *o) {
        struct build_ctx *c = arg;
        return imager_add_to_output(c->o->imager_json, o, c->profile.name, c->profile.description,
                                    model_imager_device(c->job->host.model));
}

static int phase_finish(struct build_ctx *c) {
        struct build_job *j = c->job;
        int r;
        _cleanup_free_ char *secrets = NULL;
        if (j->write_secrets_file && j->generated->n) {
                /* committed with OUT: the old OUT keeps its own until then */
                secrets = xasprintf("%s.secrets.env", j->out);
                size_t len;
                char *text = env_serialize(j->generated, &len);
                r = output_add_file(&c->out, secrets, text, len, 0600);
                explicit_bzero(text, len);
                free(text);
                if (r < 0)
                        return r;
        }
        if (c->o->imager_json && !j->fleet_name) {
                c->out.describe = describe_imager;
                c->out.describe_arg = c;
        }
        if ((r = output_commit(&c->out)) < 0)
                return r;
        if (!j->fleet_name)
                output_finished(); /* a fleet's host is not the last output */
        if (secrets)
                log_info("Generated secrets saved to %s (keep it safe)", secrets);
        if (j->imager_item) {
                _cleanup_free_ char *name = xasprintf("%s (%s)", j->host.hostname, c->profile.name);
                imager_item_from_output(j->imager_item, &c->out, name, c->profile.description,
                                        model_imager_device(j->host.model));
        }
        if (!j->host.user)
                log_warn(j->out, "built without --user: nobody will be able to log in to this Pi");
        log_info("Wrote %s", j->out);
        return 0;
}

/* Run one phase, reporting its duration with --verbose.  A failed phase
 * reports nothing: its error line stays the last line. */
static int phase(struct build_ctx *c, const char *name, int (*fn)(struct build_ctx *)) {
        double t0 = monotonic_s();
        int r = fn(c);
        if (r >= 0)
                log_debug("phase %s: %.2f s", name, monotonic_s() - t0);
        return r;
}

/* A fleet host's commit on its own thread (build_job.detach_finish): one
 * commit keeps a CPU busy with the image's SHA-256 while the other half
 * idles, so the next host's clone, edits and commit fill the rest. */
struct build_pending {
        pthread_t thread;
        struct build_ctx *c;
        int r;
};

static void *finish_thread(void *arg) {
        struct build_pending *p = arg;
        p->r = phase(p->c, "finish", phase_finish);
        return NULL;
}

int build_join(struct build_job *job) {
        struct build_pending *p = job->pending;
        if (!p)
                return 0;
        pthread_join(p->thread, NULL);
        int r = p->r;
        ctx_free(p->c);
        free(p);
        job->pending = NULL;
        return r;
}

/* What a fleet's later hosts derive their wiring from. */
static void copy_final_env(const struct build_ctx *c) {
        if (!c->job->final_env)
                return;
        for (size_t i = 0; i < c->env.n; i++) {
                const struct env_var *v = &c->env.v[i];
                env_set(c->job->final_env, v->key, v->value, v->origin, v->file, v->line);
        }
}

/* ---- a dry run's look at the base ---- */

/* What a dry run can read of the base without decompressing it: the base
 * itself when raw, else the decompressed copy the cache holds.  Its path
 * (caller frees) and, where known, its sha256; NULL for neither. */
static char *readable_base(const struct build_ctx *c, char sum[65], bool *cached) {
        struct stat st;
        uint64_t size;
        enum fmt fmt;
        struct cache_entry e;
        *cached = false;
        int fd = decoder_open_file(c->o->base, &st, &size, &fmt);
        if (fd < 0)
                return NULL;
        close(fd);
        if (fmt == FMT_RAW) {
                if (!c->o->no_cache && cache_lookup_sum(c->o->base, &st, &e) > 0) {
                        memcpy(sum, e.sha256, 65);
                        cache_entry_free(&e);
                }
                return xstrdup(c->o->base);
        }
        if (c->o->no_cache || cache_lookup(c->o->base, &st, &e) <= 0)
                return NULL;
        char *path = xstrdup(e.image);
        memcpy(sum, e.sha256, 65);
        cache_entry_free(&e);
        *cached = true;
        return path;
}

/* The checks a build makes once the base is read (time zone, locale,
 * Wi-Fi country and keymap against its lists, Compose v1 on Bookworm, room
 * in both partitions), made on the base in place when that costs no
 * decompression; the base's own edits join the payload the dry run prints. */
static int dry_run_base(struct build_ctx *c) {
        char sum[65] = "";
        bool cached;
        _cleanup_free_ char *path = readable_base(c, sum, &cached);
        if (!path) {
                log_info("%s is compressed and not in the cache: what depends on its contents (time zone, locale, "
                         "free space) is checked by the build",
                         c->o->base);
                return 0;
        }
        /* A damaged cache entry, or one removed since the lookup (cache
         * clean, another build's eviction), is the build's to notice (it
         * reads the base again then), not a reason to refuse the dry run. */
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        int r = fd < 0 ? -errno : 0;
        if (r < 0 && !cached)
                return log_error(input_err(r), path, "cannot open: %s", strerror(-r));
        struct build_base b = {.path = path, .fd = fd, .name = c->o->base};
        if (cached)
                log_hold();
        if (r == 0)
                r = probe_into(&b, &c->layout, &c->base, &c->os);
        if (cached)
                log_release(r >= 0);
        if (r < 0 && cached) {
                log_info("the cached copy of %s cannot be read: what depends on its contents is checked by the build",
                         c->o->base);
                if (fd >= 0)
                        close(fd);
                return 0;
        }
        struct plan_input in;
        plan_input_init(c, &in);
        in.base_sha256 = sum;
        in.base_sha256_pending = !*sum;
        if (r >= 0) {
                warn_armhf(c);
                r = plan_base_edits(&in, &c->payload);
        }
        uint64_t grow = 0;
        struct apply_opts ao = {.image = path, .fd = fd, .name = c->o->base, .grow = c->o->grow, .no_grow = c->o->no_grow};
        if (r >= 0)
                r = apply_check(&ao, &c->layout, &c->payload, &grow);
        if (r >= 0 && grow) {
                char g[32];
                format_size(grow, g);
                log_info("The root filesystem would grow by %s", g);
        }
        close(fd);
        return r;
}

int build_run(struct build_job *job) {
        struct build_ctx *c = xcalloc(1, sizeof(*c));
        *c = (struct build_ctx){.job = job, .o = job->opts};
        job->pending = NULL;
        /* the input's warnings wait until it is known good (the edits
         * made, or the dry run's checks passed) */
        log_defer(true);
        bool flushed = false;
        int r = phase(c, "inputs", phase_inputs);
        if (r >= 0)
                r = phase(c, "plan", phase_plan);
        if (job->check_only) {
                log_flush(false);
                if (r >= 0)
                        copy_final_env(c);
                ctx_free(c);
                return r;
        }
        /* a dry run checks OUT as the build would, without creating it */
        if (r >= 0 && c->o->dry_run && !job->fleet_name)
                r = output_check(job->out, c->o->base, c->o->force);
        if (r >= 0 && c->o->dry_run)
                r = dry_run_base(c);
        if (c->o->dry_run)
                log_flush(r >= 0);
        if (r >= 0 && c->o->dry_run) {
                payload_sort(&c->payload);
                payload_dump(&c->payload, stdout);
                copy_final_env(c);
                ctx_free(c);
                return 0;
        }
        /* what the base and the cache have to say, they say at once */
        log_defer(false);
        for (;;) {
                if (r >= 0)
                        r = phase(c, "base", phase_base);
                if (r >= 0)
                        r = phase(c, "edit", phase_edit);
                if (r >= 0 && !flushed) {
                        log_flush(true);
                        flushed = true;
                }
                if (r >= 0 && !job->detach_finish)
                        r = phase(c, "finish", phase_finish);
                /* Whatever failed, a damaged cache hit (or a base that is not
                 * what its remembered sum says) explains it (its
                 * messages were held back and dropped): once more, from the
                 * base itself.  A sum still being computed is not waited
                 * for (source_drop): only a base written during the build
                 * would explain the failure, and the error says enough then
                 * too. */
                if (r >= 0 || c->rebuilt || !source_drop(&c->src))
                        break;
                ctx_rewind(c);
                c->rebuilt = true;
                r = phase(c, "plan", phase_plan);
        }
        if (!flushed)
                log_flush(r >= 0);
        if (r >= 0)
                copy_final_env(c);
        if (r >= 0 && job->detach_finish) {
                struct build_pending *p = xmalloc(sizeof(*p));
                *p = (struct build_pending){.c = c};
                if (pthread_create(&p->thread, NULL, finish_thread, p) == 0) {
                        job->pending = p;
                        return 0;
                }
                free(p);
                r = phase(c, "finish", phase_finish); /* no thread to be had: here, then */
        }
        ctx_free(c);
        return r;
}

/* --imager-json may name none of the build's inputs or outputs: it would
 * be renamed over whatever it names. */
static int check_imager_json(const struct build_opts *o) {
        size_t ncomp = 0;
        while (output_companions[ncomp])
                ncomp++;
        const char **others = xcalloc(ncomp + 3 + o->nenv_files, sizeof(*others));
        size_t n = 0;
        others[n++] = xstrdup(o->out);
        for (size_t i = 0; i < ncomp; i++)
                others[n++] = xasprintf("%s%s", o->out, output_companions[i]);
        size_t owned = n;
        others[n++] = o->base;
        for (size_t i = 0; i < o->nenv_files; i++)
                others[n++] = o->env_files[i];
        if (o->host_file)
                others[n++] = o->host_file;
        int r = output_check_extra(o->imager_json, "--imager-json", others, n, o->force);
        for (size_t i = 0; i < owned; i++)
                free((char *)others[i]);
        free(others);
        return r;
}

int cmd_build(int argc, char **argv) {
        /* A build holds the stack's secrets and the login password in
         * memory: no core dump of it (SIGQUIT, a crash) is written, here or
         * to systemd-coredump or apport, as ssh-agent does. */
        (void)setrlimit(RLIMIT_CORE, &(struct rlimit){0, 0});
        (void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
        struct build_opts o;
        int r = cli_parse_build(argc, argv, &o);
        if (r != 0) {
                cli_free(&o);
                return r > 0 ? 0 : r;
        }
        /* "-o fleet/", as the README writes it: every path made from it
         * reads "fleet/dimdim-app.img", not "fleet//dimdim-app.img" */
        for (size_t n = strlen(o.out); o.fleet && n > 1 && o.out[n - 1] == '/';)
                o.out[--n] = '\0';
        /* from here a stop undoes the run, and says so */
        output_install_signal_handlers();
        output_on_interrupt(o.out, o.fleet ? "fleet not written; none of its images kept" : "not written");
        /* The base first: a mistyped path is the likeliest mistake, and
         * nothing else can be checked against an image that is not there. */
        if ((r = source_probe(o.base, true)) < 0) {
                cli_free(&o);
                return r;
        }
        if (o.fleet) {
                r = fleet_build(&o);
                cli_free(&o);
                return r;
        }
        struct env generated = {0};
        struct build_job job = {
                .opts = &o,
                .role = o.role,
                .out = o.out,
                .generated = &generated,
                .write_secrets_file = true,
                .shared_base_fd = -1,
        };
        if (o.imager_json && (r = check_imager_json(&o)) < 0)
                goto out;
        if (o.host_file && (r = host_load_file(o.host_file, &job.host)) < 0)
                goto out;
        /* an existing OUT is the one to name: output_begin does, at once */
        if (o.force == false && access(o.out, F_OK) != 0) {
                _cleanup_free_ char *sp = xasprintf("%s.secrets.env", o.out);
                if (access(sp, F_OK) == 0) {
                        r = log_error(EEXIST, sp, "exists; use --force to overwrite");
                        goto out;
                }
        }
        host_merge(&job.host, &o.host);
        r = build_run(&job);
out:
        host_free(&job.host);
        env_free(&generated);
        cli_free(&o);
        return r;
}
