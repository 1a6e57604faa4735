/* SPDX-License-Identifier: GPL-3.0-or-later */
/* `dimimage build` options -> struct build_opts.  Option values are checked
 * for form here; their meaning (files, keys) is checked by the phases. */
#pragma once

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "host.h"
#include "util.h"

struct dotenv_text;

struct build_opts {
        char *role;             /* --role: a profile name or a profile file */
        char *base;             /* --base */
        char *out;              /* -o/--output */
        char **env_files;       /* --env, in order */
        size_t nenv_files;
        char **sets;            /* --set KEY=VALUE, in order */
        size_t nsets;
        const char *sets_file;  /* fleet hosts: the fleet file, for set_lines */
        unsigned *set_lines;    /* fleet hosts: parallel to sets, the fleet file's line
                                 * of each value, 0 for one from --set; else NULL */
        const bool *env_file_shared; /* fleet hosts: parallel to env_files, whether the
                                      * file is every host's (fleet file, --env); else NULL */
        const bool *set_shared;      /* fleet hosts: the same for sets */
        const struct dotenv_text *env_texts; /* fleet hosts: every env file's text, read once
                                              * for the fleet (stackenv_input); else NULL */
        size_t nenv_texts;
        char *source;           /* --source DIR|ARCHIVE */
        char *host_file;        /* --host */
        char *fleet;            /* --fleet */
        uint64_t grow;          /* --grow SIZE (bytes), 0 = automatic */
        bool no_grow;
        bool no_cache;
        bool allow_weak;
        bool allow_built_base;  /* build over an image dimimage built */
        bool force;
        bool no_bmap;
        bool dry_run;
        int compression_level;  /* -1 = default */
        char *imager_json;
        struct host_settings host; /* host options given on the command line */
};

/* Parses argv (argv[0] is "build").  Returns 0, 1 when --help was printed,
 * or a negative -errno after logging a usage error. */
int cli_parse_build(int argc, char **argv, struct build_opts *o);
void cli_free(struct build_opts *o);
void cli_build_usage(FILE *f);
/* The long name of the option getopt returns as val in opts, or NULL (also
 * for 0): after a '?', optopt naming one means "--NAME=VALUE" was given to
 * an option that takes none, rather than an unknown option. */
const char *cli_long_option(const struct option *opts, int val);
/* word, up to any '=', is --name or an abbreviation of it, as getopt_long
 * takes one ("--js" for --json). */
bool cli_word_names(const char *word, const char *name);
/* A file option's value: "" is no name, and "-" is not standard input here
 * (a base is read more than once, outputs are renamed into place), where
 * tools that stream would take it so; hint is appended to the latter
 * (" (...)" or ""). */
int cli_check_file_arg(const char *cmd, const char *opt, const char *v, const char *hint);

/* Every command's usage errors, worded one way: "CMD: MESSAGE (see
 * `dimimage CMD --help`)" (cmd NULL: the top level's), logged; returns
 * -EUSAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) _printf_(2, 3);
/* "unknown option 'WORD'", WORD cut at its '=' (a value there may be a
 * secret).  operands: the command takes file names, and says how to give
 * one that starts with '-'. */
int cli_unknown_option(const char *cmd, const char *word, bool operands);
/* After getopt_long (opterr 0, optstring starting with ':') returned c,
 * '?' or ':': an unknown option, an option with no value, or a value given
 * to one that takes none ("--force=yes"), as cli_usage_error. */
int cli_getopt_error(const char *cmd, const struct option *opts, int c, char **argv, bool operands);
