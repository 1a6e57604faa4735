/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Output files: a temporary beside OUT, fsync, then rename; removed on every
 * error path and on SIGINT/SIGTERM.  OUT's extension picks the format. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <stdint.h>

enum out_format { OUT_RAW, OUT_XZ, OUT_ZSTD, OUT_GZIP, OUT_UNKNOWN };

/* Bytes the commit fills in as it reads the image back, instead of the
 * build waiting for them before its edits (the base's sha256 in the
 * manifest, computed beside the build: build.c). */
#define OUTPUT_PATCH_BYTES 64
#define OUTPUT_PATCH_SPANS 4
struct output_patch {
        struct {
                uint64_t off, len; /* in the image */
                size_t from;       /* in the filled data */
        } span[OUTPUT_PATCH_SPANS];
        size_t nspan;              /* 0: nothing to fill */
        /* Called once, by the reader, when it first meets a span: writes
         * the bytes to put there.  A negative return fails the commit
         * unlogged (the caller's own verdict says why). */
        int (*fill)(void *arg, uint8_t data[OUTPUT_PATCH_BYTES]);
        void *arg;
};

#define OUTPUT_MAX_EXTRA 2

/* A file committed with OUT, under its temporary name until renamed. */
struct output_file {
        char *path, *tmp;
        bool renamed;
        bool tracked; /* for a signal, as itself once renamed */
};

struct output {
        char *path;            /* OUT as given */
        char *tmp_raw;         /* temporary raw image, beside OUT */
        int fd;                /* on tmp_raw */
        enum out_format format;
        bool force;
        bool no_bmap;
        /* Compressed outputs: skip the raw image's sha256 (raw_sha256 left
         * empty) when nobody reads it (no Imager JSON): one SHA-256 pass over
         * the whole image less beside the compressor. */
        bool no_raw_sha256;
        /* OUT stays tracked for signal cleanup once renamed into place
         * (tracked just before its rename) until output_finished: an interrupted
         * run leaves no image, and a fleet undoes its images when
         * interrupted as when it fails. */
        bool track_committed;
        /* The caller holds the lock of OUT's directory (output_lock_dir: a
         * fleet, for its whole run), so the commit does not take it: a
         * second flock of the directory would wait for the first. */
        bool dir_locked;
        int compression_level; /* -1: format default */
        /* A progress line while a compressed OUT is compressed (minutes for a
         * real base's .img.xz; on a terminal, without --quiet).  Not for a
         * fleet's commits: they run beside the next host's build and log. */
        bool progress;
        char sha256[65];       /* of the final OUT file, after commit */
        uint64_t raw_bytes;
        /* Filled by output_begin/output_commit; callers only read them. */
        char raw_sha256[65];   /* of the raw image, after commit */
        uint64_t out_bytes;    /* size of OUT, after commit */
        bool has_bmap;         /* OUT.bmap was written */
        char *tmp_out;         /* compressed temporary, during commit */
        bool committed;
        /* If set, called by output_commit once the image is hashed and
         * before anything is renamed into place; a negative return fails
         * the commit (a cache hit checked beside the build, found damaged). */
        int (*precommit)(void *arg);
        void *precommit_arg;
        struct output_patch patch;
        /* Files that describe OUT (OUT.secrets.env, an Imager JSON), added by
         * output_add_file as hidden temporaries and renamed with OUT.bmap and
         * OUT.sha256, after OUT. */
        struct output_file extra[OUTPUT_MAX_EXTRA];
        size_t nextra;
        /* If set, called by output_commit once every size and sum is known
         * (has_bmap too) and before anything is renamed: it may add what
         * needs them (output_add_file).  A negative return fails the commit. */
        int (*describe)(void *arg, struct output *o);
        void *describe_arg;
};

/* The files beside OUT that describe it ("OUT.bmap" ...), NULL-terminated:
 * a commit removes the old ones before OUT is replaced. */
extern const char *const output_companions[];

/* -o's name alone: an image extension (.img, .img.xz, ...), not a
 * directory.  A usage error, before any work. */
int output_check_name(const char *path);
/* What output_begin refuses, without creating anything (a dry run's check):
 * an unknown extension, OUT or a companion naming the base, a missing or
 * unwritable directory, an existing OUT without force.  Logs, -errno. */
int output_check(const char *path, const char *base, bool force);

/* A file the build reads, and the option that names it. */
struct output_input {
        const char *path;
        const char *what;
};
/* Refuse when one of the n inputs is a file that committing path
 * replaces or removes: path itself or one of its companions (an earlier
 * build's OUT.secrets.env given as --env, say, which a rebuild that
 * generates nothing removes).  Logs, -errno. */
int output_check_inputs(const char *path, const struct output_input *in, size_t n);
/* Whether a and b name one file: one inode, or one absolute path for
 * files not there yet. */
bool output_same_file(const char *a, const char *b);

/* OUT_UNKNOWN for an extension other than .img, .img.xz, .img.zst, .img.gz. */
enum out_format output_format_for(const char *path);
/* Check OUT (not the base, not existing unless force, directory writable),
 * create the temporary raw image. Logs, -errno. */
int output_begin(struct output *o, const char *path, const char *base, bool force);
/* fsync; compress if asked; write OUT.bmap and OUT.sha256; rename into
 * place.  On failure everything temporary is removed. */
int output_commit(struct output *o);
/* Remove every temporary file and release o's memory; safe to call twice.
 * Call it after a successful commit too (it then only frees). */
void output_abort(struct output *o);
/* SIGINT/SIGTERM/SIGHUP remove registered temporaries, say so in one line
 * (output_on_interrupt), then re-raise. */
void output_install_signal_handlers(void);
/* What that line says from now on: "dimimage: interrupted: FILE: NOTE".
 * FILE is taken at the first call (a run is about one output, directory or
 * device); NOTE must outlive the run (a string literal), since the handler
 * reads it where it is. */
void output_on_interrupt(const char *file, const char *note);
/* The run's outputs are all in place: a signal now is ignored (the run
 * ends with 0 and its outputs, not "interrupted" beside them).  Call it
 * where the last output is committed, before untracking what a signal
 * would otherwise have removed. */
void output_finished(void);
/* Remove the temporaries a killed build of path left beside it (logged,
 * never fails); output_begin does it for its OUT. */
void output_sweep(const char *path);
/* The lock each commit takes on OUT's directory (flock), so OUT and its
 * companions come from one run; waits for it, saying so.  The descriptor
 * to close to release it, or -1 when none can be had. */
int output_lock_dir(const char *dir);
/* Register/unregister an extra temporary path for signal cleanup. */
void output_track_temp(const char *path);
/* mkostemp(tmpl, O_CLOEXEC) and output_track_temp as one step: a fatal
 * signal in between, on this thread or another, would leave the file
 * behind.  The fd, or -errno. */
int output_mkstemp(char *tmpl);
void output_untrack_temp(const char *path);
/* Register a directory this run created: a signal removes it, once the
 * tracked files are gone, if it is empty.  Undone by output_untrack_temp. */
void output_track_dir(const char *path);
/* mkdir and output_track_dir as one step (see output_mkstemp); 0 or -errno. */
int output_mkdir(const char *path, mode_t mode);
/* A --force run that replaces several files one after another (a fleet)
 * keeps each until it has succeeded, so that failing, or stopped by a
 * signal, it leaves them as they were.  output_keep_dir makes the hidden
 * DIR/.dimimage-previous.XXXXXX (tracked: a signal removes it once empty),
 * or warns and returns NULL.  output_keep hard-links path (a regular file;
 * 0 and *kept NULL when there is none) there as *kept (caller frees),
 * tracked: a signal links it back to its name where nothing else took it.
 * Where no link can be made it warns (-errno), and the run goes on.
 * output_kept_done ends that: restore links it back (the run's own file of
 * that name already removed), and either way the kept name goes. */
char *output_keep_dir(const char *dir);
int output_keep(const char *path, const char *keep_dir, char **kept);
void output_kept_done(const char *kept, bool restore);
/* A new hidden temporary beside path: "DIR/.BASE.XXXXXX.tmp", created with
 * O_EXCL and mode 0600 whatever the umask, tracked for signal cleanup.
 * Returns the fd, *tmp gets the name.  Logs, -errno. */
int output_create_temp(const char *path, char **tmp);

/* Write data (mode set before the first byte) to a hidden temporary beside
 * path, to be renamed to path by output_commit with OUT's other files;
 * removed if the commit fails or never comes.  Logs, -errno. */
int output_add_file(struct output *o, const char *path, const void *data, size_t len, unsigned mode);
/* Refuse path, a file the build writes besides OUT (what: the option that
 * names it), when it is one of the n files in others (the inputs, OUT and
 * its companions), when its directory is missing or not writable, and when
 * it exists without force.  Nothing is written.  Logs, -errno. */
int output_check_extra(const char *path, const char *what, const char *const *others, size_t n, bool force);

/* Make the file at path (open read-write as fd) the raw temporary of o,
 * replacing the empty one output_begin made, instead of copying it (a
 * fleet's last host takes over the shared base).  0 when done; 1 when it
 * cannot (another filesystem): the caller copies instead. */
int output_adopt(struct output *o, const char *path, int fd);
/* Write data to path atomically with mode (temporary, fsync, rename, fsync
 * dir); the mode is set before any byte is written.  track: path stays
 * tracked once renamed (as the file renamed: a signal removes it), until
 * output_untrack_temp. */
int output_write_file_atomic(const char *path, const void *data, size_t len, unsigned mode, bool track);
