/* SPDX-License-Identifier: GPL-3.0-or-later */
/* `dimimage build`: one context through named phases —
 *   inputs (profile, env, host)  -> plan (payload, compose checks)
 *   -> base (temp output from the base) -> edit (base files, apply)
 *   -> finish (secrets file, commit: fsync, bmap, compress, rename).
 * Everything that can be validated is validated before the base is read. */
#pragma once

#include <stdbool.h>

#include "cli.h"
#include "dotenv.h"
#include "host.h"
#include "source.h"

struct appsource_cache;
struct imager_item;

struct build_job {
        const struct build_opts *opts;
        const char *role;
        const char *out;
        struct host_settings host;            /* merged; finalized by build_run, unless
                                               * host_checked */
        bool host_checked;                    /* fleet: host finalized and its model checked
                                               * against the role already (every host is, before
                                               * the base is read) */
        const struct env *derived;            /* fleet wiring, or NULL */
        const struct env *fixed_secrets;      /* fleet: secrets generated once (check_only), or
                                               * NULL */
        struct env *generated;                /* where generated secrets are collected */
        bool write_secrets_file;              /* OUT.secrets.env (single builds) */
        int shared_base_fd;                   /* fleet: extracted base to clone, or -1 */
        const char *shared_base_path;         /* its path */
        bool adopt_base;                      /* fleet's last host: take the file over, no copy */
        const struct source_info *shared_src; /* its info */
        const char *fleet_name;
        const char *host_label;               /* "FLEET.yml: host dimdim-app" for messages */
        const char *source;                   /* --source for this job (overrides opts) */
        bool source_shared;                   /* fleet: source is every host's, so left out of
                                               * a host whose compose files build nothing */
        struct appsource_cache *source_cache; /* fleet: its archives, read once, or NULL */
        struct env *final_env;                /* if set: receives the resolved environment */
        struct env *dropped;                  /* fleet: receives the shared keys this role does
                                               * not use (stackenv_input.dropped), or NULL */
        struct imager_item *imager_item;      /* fleet: filled by the commit, for the
                                               * fleet's Imager list, or NULL */
        bool dir_locked;                      /* fleet: OUT's directory is locked for the whole
                                               * fleet (output.dir_locked) */
        bool check_only;                      /* fleet: the inputs and the plan only, before the
                                               * base is read; warnings dropped (the build says
                                               * them) */
        bool detach_finish;                   /* fleet (shared base, so no cache check): the
                                               * commit runs on a thread and build_run returns
                                               * once it started; build_join has its result */
        struct build_pending *pending;        /* set by build_run when detached */
};

/* A decompressed base at path (open as fd), named name in messages. */
struct build_base {
        const char *path;
        int fd;
        const char *name;
};

/* source_opts.cache_accept for a struct build_base: 0 when a build would
 * take it (a Raspberry Pi OS disk layout and release), else -errno; its
 * messages are dropped (a fleet's hosts each probe their own copy). */
int build_accept_base(void *arg);

/* Build one image.  With detach_finish, 0 means that everything up to the
 * commit succeeded and the commit is running: the job (and what it points
 * to) must outlive it, until build_join. */
int build_run(struct build_job *job);
/* Wait for a detached commit: its result, 0 when there is none. */
int build_join(struct build_job *job);
int cmd_build(int argc, char **argv);
