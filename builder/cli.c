/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "cli.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "compress.h"
#include "log.h"
#include "model.h"
#include "output.h"
#include "profile.h"
#include "secret.h"
#include "util.h"

enum {
        OPT_ROLE = 1000, OPT_BASE, OPT_ENV, OPT_SET, OPT_SOURCE, OPT_HOST, OPT_FLEET, OPT_GROW, OPT_NO_GROW,
        OPT_NO_CACHE, OPT_ALLOW_WEAK, OPT_ALLOW_BUILT, OPT_NO_BMAP, OPT_DRY_RUN, OPT_LEVEL,
        OPT_IMAGER, OPT_HOSTNAME, OPT_USER, OPT_PWHASH, OPT_PWFILE, OPT_SSHKEY, OPT_IP, OPT_GATEWAY, OPT_DNS,
        OPT_WIFI_SSID, OPT_WIFI_PSK, OPT_WIFI_COUNTRY, OPT_WIFI_HIDDEN, OPT_TZ, OPT_LOCALE, OPT_KEYMAP, OPT_MODEL,
};

static const struct option options[] = {
        {"role", required_argument, NULL, OPT_ROLE},
        {"base", required_argument, NULL, OPT_BASE},
        {"output", required_argument, NULL, 'o'},
        {"env", required_argument, NULL, OPT_ENV},
        {"set", required_argument, NULL, OPT_SET},
        {"source", required_argument, NULL, OPT_SOURCE},
        {"host", required_argument, NULL, OPT_HOST},
        {"fleet", required_argument, NULL, OPT_FLEET},
        {"grow", required_argument, NULL, OPT_GROW},
        {"no-grow", no_argument, NULL, OPT_NO_GROW},
        {"no-cache", no_argument, NULL, OPT_NO_CACHE},
        {"allow-weak-secrets", no_argument, NULL, OPT_ALLOW_WEAK},
        {"allow-built-base", no_argument, NULL, OPT_ALLOW_BUILT},
        {"force", no_argument, NULL, 'f'},
        {"no-bmap", no_argument, NULL, OPT_NO_BMAP},
        {"quiet", no_argument, NULL, 'q'},
        {"verbose", no_argument, NULL, 'v'},
        {"dry-run", no_argument, NULL, OPT_DRY_RUN},
        {"compression-level", required_argument, NULL, OPT_LEVEL},
        {"imager-json", required_argument, NULL, OPT_IMAGER},
        {"hostname", required_argument, NULL, OPT_HOSTNAME},
        {"user", required_argument, NULL, OPT_USER},
        {"password-hash", required_argument, NULL, OPT_PWHASH},
        {"password-file", required_argument, NULL, OPT_PWFILE},
        {"ssh-key", required_argument, NULL, OPT_SSHKEY},
        {"ip", required_argument, NULL, OPT_IP},
        {"gateway", required_argument, NULL, OPT_GATEWAY},
        {"dns", required_argument, NULL, OPT_DNS},
        {"wifi-ssid", required_argument, NULL, OPT_WIFI_SSID},
        {"wifi-psk-file", required_argument, NULL, OPT_WIFI_PSK},
        {"wifi-country", required_argument, NULL, OPT_WIFI_COUNTRY},
        {"wifi-hidden", no_argument, NULL, OPT_WIFI_HIDDEN},
        {"timezone", required_argument, NULL, OPT_TZ},
        {"locale", required_argument, NULL, OPT_LOCALE},
        {"keymap", required_argument, NULL, OPT_KEYMAP},
        {"model", required_argument, NULL, OPT_MODEL},
        {"help", no_argument, NULL, 'h'},
        {0},
};

void cli_build_usage(FILE *f) {
        fputs("Usage: dimimage build --role ROLE --base IMAGE -o OUT [OPTIONS]\n"
              "       dimimage build --fleet FLEET.yml --base IMAGE -o DIR [OPTIONS]\n"
              "\n"
              "Write a Raspberry Pi OS image that provisions itself on first boot as one\n"
              "role of the DimDim Health stack. No root, mounts or emulator are needed;\n"
              "the base image is only read.\n"
              "\n"
              "What to build:\n"
              "  --role ROLE            app, observability, all, app-standalone (see\n"
              "                         `dimimage profiles`), or a profile .yml file\n"
              "  --base IMAGE           Raspberry Pi OS image: .img, .img.xz, .img.gz,\n"
              "                         .img.zst or a .zip holding one image\n"
              "  --allow-built-base     build over an image dimimage built already (refused\n"
              "                         without it: what that build set would stay)\n"
              "  -o, --output OUT       the image to write; its name ends .img (sparse),\n"
              "                         .img.xz, .img.zst or .img.gz (OUT.bmap, OUT.sha256 beside)\n"
              "  --fleet FLEET.yml      build every host of a fleet into directory OUT\n"
              "\n"
              "Stack settings:\n"
              "  --env FILE             .env file (docker compose syntax); repeatable, later wins\n"
              "  --set KEY=VALUE        one variable (once per KEY); overrides --env files\n"
              "  --source DIR|ARCHIVE   application source for the api/worker builds\n"
              "  --allow-weak-secrets   accept short or well-known passwords\n"
              "\n"
              "Host settings (or put them in --host FILE.yml):\n"
              "  --hostname NAME        --user NAME          --ssh-key FILE.pub (repeatable)\n"
              "  --password-hash HASH   --password-file FILE (hashed with yescrypt)\n"
              "  --ip ADDR/PREFIX       --gateway ADDR       --dns ADDR (repeatable)\n"
              "  --wifi-ssid SSID       --wifi-psk-file FILE --wifi-country CC\n"
              "  --wifi-hidden          the network does not broadcast its SSID\n"
              "  --timezone TZ          --locale LOCALE      --keymap LAYOUT\n"
              "  --model MODEL          Pi model; refuses a role the model cannot run:\n",
              f);
        /* the model table's own list, wrapped under the option */
        static const char indent[] = "                         ";
        size_t col = 0;
        for (const char *w = model_names(); *w;) {
                size_t n = strcspn(w, " ");
                if (col == 0 || col + 1 + n > 54) {
                        fprintf(f, "%s%s", col ? "\n" : "", indent);
                        col = 0;
                } else {
                        fputc(' ', f);
                        col++;
                }
                fprintf(f, "%.*s", (int)n, w);
                col += n;
                w += n + (w[n] ? 1 : 0);
        }
        fputs("\n"
              "\n"
              "Output:\n"
              "  --grow SIZE            add SIZE (e.g. 512M) to the root filesystem\n"
              "  --no-grow              refuse instead of growing when the payload does not fit\n"
              "  --compression-level N  for .xz/.zst/.gz outputs\n"
              "  --imager-json FILE     write a Raspberry Pi Imager repository entry (with\n"
              "                         --fleet, one per host)\n"
              "  --no-bmap              do not write OUT.bmap\n"
              "  --no-cache             do not use or fill the base cache (decompressed bases,\n"
              "                         a raw base's remembered sha256)\n"
              "  -f, --force            overwrite OUT\n"
              "  --dry-run              check everything and print what would be written, write\n"
              "                         nothing (a compressed base not in the cache is not\n"
              "                         decompressed: the checks of its contents are left to\n"
              "                         the build, and the dry run says so)\n"
              "  -q, --quiet            print only warnings and errors\n"
              "  -v, --verbose          also each phase's time and the cache's decisions\n"
              "\n"
              "Example:\n"
              "  dimimage build --role app --base raspios-trixie-arm64-lite.img.xz \\\n"
              "      --env app.env --source dimdim-health.tar.gz --hostname dimdim-app \\\n"
              "      --user pi --ssh-key ~/.ssh/id_ed25519.pub \\\n"
              "      --ip 192.168.1.101/24 --gateway 192.168.1.1 -o dimdim-app.img\n"
              "\n"
              "Generated secrets are saved, never printed, to OUT.secrets.env (0600).\n"
              "Exit status: 0 on success, 64 usage, 65 bad input data, 66 missing or\n"
              "unreadable input, 73 cannot create output (an existing OUT without --force,\n"
              "a full disk), 74 I/O error, 75 the base changed while it was read (try\n"
              "again), 130 interrupted.\n",
              f);
}

static void push(char ***v, size_t *n, const char *s) {
        *v = xrealloc(*v, (*n + 1) * sizeof **v);
        (*v)[(*n)++] = xstrdup(s);
}

/* An option that takes one value, given twice: which one was meant is a
 * guess (a script's default and an override look the same as a typo). */
static bool set_once(char **dst, const char *val) {
        bool again = *dst != NULL;
        free(*dst);
        *dst = xstrdup(val);
        return again;
}

const char *cli_long_option(const struct option *opts, int val) {
        for (const struct option *opt = opts; val && opt->name; opt++)
                if (opt->val == val)
                        return opt->name;
        return NULL;
}

static const char *option_name(int c) {
        const char *name = cli_long_option(options, c);
        return name ? name : "?";
}

int cli_usage_error(const char *cmd, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        _cleanup_free_ char *msg = NULL;
        if (vasprintf(&msg, fmt, ap) < 0)
                abort();
        va_end(ap);
        return log_error(EUSAGE, cmd, "%s (see `dimimage %s%s--help`)", msg, cmd ? cmd : "", cmd ? " " : "");
}

int cli_unknown_option(const char *cmd, const char *word, bool operands) {
        /* "--pasword=VALUE": the value may be a secret */
        int n = (int)strcspn(word, "=");
        /* a file name that starts with '-' ("-x.img") reads as options */
        if (operands)
                return cli_usage_error(cmd, "unknown option '%.*s'; put `--` before a file name that starts with '-'",
                                       n, word);
        return cli_usage_error(cmd, "unknown option '%.*s'", n, word);
}

bool cli_word_names(const char *word, const char *name) {
        size_t n = strcspn(word, "=");
        return n > 2 && word[0] == '-' && word[1] == '-' && n - 2 <= strlen(name) && !strncmp(word + 2, name, n - 2);
}

int cli_getopt_error(const char *cmd, const struct option *opts, int c, char **argv, bool operands) {
        /* A long option's word is at argv[optind - 1]; a letter may be in
         * a cluster ("-yb", "-Zx"), and the word there may then be the one
         * before it, or the option's value: the letter is named alone. */
        const char *word = argv[optind - 1];
        bool is_long = word[0] == '-' && word[1] == '-';
        if (c == ':') {
                if (is_long)
                        return cli_usage_error(cmd, "option '%.*s' needs a value", (int)strcspn(word, "="), word);
                return cli_usage_error(cmd, "option '-%c' needs a value", optopt);
        }
        /* "--force=yes": getopt has the option in optopt, and the word is
         * that option's (an abbreviation of it) with a value.  Only then: a
         * letter that is no option ("-j") has its value in optopt too, which
         * a long option without that short form may share (inspect's
         * --json is 'j'), and the word may be the one before the letter's. */
        const char *name = cli_long_option(opts, optopt);
        if (name && strchr(word, '=') && cli_word_names(word, name))
                return cli_usage_error(cmd, "option '--%s' takes no value", name);
        if (optopt) {
                char letter[3] = {'-', (char)optopt, 0};
                return cli_unknown_option(cmd, letter, operands);
        }
        /* getopt takes a unique abbreviation, and says no more of one that
         * several options start with than of an unknown option */
        struct buf could = {0};
        size_t n = 0;
        for (const struct option *opt = opts; is_long && opt->name; opt++)
                if (cli_word_names(word, opt->name))
                        buf_printf(&could, "%s--%s", n++ ? ", " : "", opt->name);
        int r = n > 1 ? cli_usage_error(cmd, "option '%.*s' is ambiguous: %s", (int)strcspn(word, "="), word,
                                        (char *)could.data)
                      : cli_unknown_option(cmd, word, operands);
        buf_free(&could);
        return r;
}

/* build's usage errors */
#define usage_error(...) cli_usage_error("build", __VA_ARGS__)

int cli_check_file_arg(const char *cmd, const char *opt, const char *v, const char *hint) {
        if (!v)
                return 0;
        if (!*v)
                return cli_usage_error(cmd, "%s: empty file name", opt);
        if (!strcmp(v, "-"))
                return cli_usage_error(cmd, "%s: '-' is not read as standard input; give a file%s", opt, hint);
        return 0;
}

/* build's: a secret may still come from a pipe, named so */
static int check_file_arg(const char *opt, const char *v) {
        return cli_check_file_arg("build", opt, v, " (a .env or key file may be /dev/stdin)");
}

static int check_file_args(const struct build_opts *o) {
        const struct host_settings *h = &o->host;
        const struct {
                const char *opt, *v;
        } one[] = {
                {"--base", o->base},         {"-o", o->out},
                {"--source", o->source},     {"--host", o->host_file},
                {"--fleet", o->fleet},       {"--imager-json", o->imager_json},
                {"--password-file", h->password_file}, {"--wifi-psk-file", h->wifi_psk_file},
        };
        int r = 0;
        for (size_t i = 0; i < ARRAY_SIZE(one) && r == 0; i++)
                r = check_file_arg(one[i].opt, one[i].v);
        for (size_t i = 0; i < o->nenv_files && r == 0; i++)
                r = check_file_arg("--env", o->env_files[i]);
        for (size_t i = 0; i < h->nssh_key_files && r == 0; i++)
                r = check_file_arg("--ssh-key", h->ssh_key_files[i]);
        return r;
}

int cli_parse_build(int argc, char **argv, struct build_opts *o) {
        *o = (struct build_opts){.compression_level = -1};
        struct host_settings *h = &o->host;
        optind = 1;
        opterr = 0;
        int c;
        while ((c = getopt_long(argc, argv, ":o:fqvh", options, NULL)) != -1) {
                bool again = false;
                switch (c) {
                case OPT_ROLE: again = set_once(&o->role, optarg); break;
                case OPT_BASE: again = set_once(&o->base, optarg); break;
                case 'o': again = set_once(&o->out, optarg); break;
                case OPT_ENV: push(&o->env_files, &o->nenv_files, optarg); break;
                case OPT_SET: {
                        /* the options-once rule, per key (a bad one is env_set_assignment's to report) */
                        size_t k = strcspn(optarg, "=");
                        /* not shown: "--set s3cret" is a secret given as a key */
                        if (!optarg[k])
                                return usage_error("%s", "--set takes KEY=VALUE in one argument (this one has no "
                                                         "'='; it is not shown, in case it is a secret)");
                        for (size_t i = 0; i < o->nsets && optarg[k]; i++)
                                if (strncmp(o->sets[i], optarg, k + 1) == 0) {
                                        _cleanup_free_ char *key = xstrndup(optarg, k);
                                        return usage_error("--set %s given twice; give it once", key);
                                }
                        push(&o->sets, &o->nsets, optarg);
                        break;
                }
                case OPT_SOURCE: again = set_once(&o->source, optarg); break;
                case OPT_HOST: again = set_once(&o->host_file, optarg); break;
                case OPT_FLEET: again = set_once(&o->fleet, optarg); break;
                case OPT_GROW:
                        again = o->grow != 0;
                        if (parse_size(optarg, &o->grow) < 0 || o->grow == 0)
                                return usage_error("--grow: '%s' is not a size such as 512M or 2G", optarg);
                        /* an MBR partition ends within 2 TiB; more would only overflow */
                        if (o->grow > (2ull << 40))
                                return usage_error("--grow: '%s' is more than an MBR disk holds (2T)", optarg);
                        /* "--grow 512" is 512 bytes to parse_size, never what was meant */
                        if (o->grow < (1u << 20) && isdigit((unsigned char)optarg[strlen(optarg) - 1]))
                                return usage_error("--grow: '%s' is that many bytes; give a unit, such as 512M or 2G",
                                                   optarg);
                        break;
                case OPT_NO_GROW: o->no_grow = true; break;
                case OPT_NO_CACHE: o->no_cache = true; break;
                case OPT_ALLOW_WEAK: o->allow_weak = true; break;
                case OPT_ALLOW_BUILT: o->allow_built_base = true; break;
                case 'f': o->force = true; break;
                case OPT_NO_BMAP: o->no_bmap = true; break;
                case 'q': log_level = LOG_QUIET; break;
                case 'v': log_level = LOG_VERBOSE; break;
                case OPT_DRY_RUN: o->dry_run = true; break;
                case OPT_LEVEL: {
                        char *end;
                        long v = strtol(optarg, &end, 10);
                        again = o->compression_level >= 0;
                        if (*end || end == optarg || v < 0 || v > 22)
                                return usage_error("--compression-level: '%s' is not a level from 0 to 22", optarg);
                        o->compression_level = (int)v;
                        break;
                }
                case OPT_IMAGER: again = set_once(&o->imager_json, optarg); break;
                case OPT_HOSTNAME: again = set_once(&h->hostname, optarg); break;
                case OPT_USER: again = set_once(&h->user, optarg); break;
                case OPT_PWHASH: again = set_once(&h->password_hash, optarg); break;
                case OPT_PWFILE: again = set_once(&h->password_file, optarg); break;
                case OPT_SSHKEY: push(&h->ssh_key_files, &h->nssh_key_files, optarg); break;
                case OPT_IP: again = set_once(&h->ip, optarg); break;
                case OPT_GATEWAY: again = set_once(&h->gateway, optarg); break;
                case OPT_DNS: push(&h->dns, &h->ndns, optarg); break;
                case OPT_WIFI_SSID: again = set_once(&h->wifi_ssid, optarg); break;
                case OPT_WIFI_PSK: again = set_once(&h->wifi_psk_file, optarg); break;
                case OPT_WIFI_COUNTRY: again = set_once(&h->wifi_country, optarg); break;
                case OPT_WIFI_HIDDEN: h->wifi_hidden = 1; break;
                case OPT_TZ: again = set_once(&h->timezone, optarg); break;
                case OPT_LOCALE: again = set_once(&h->locale, optarg); break;
                case OPT_KEYMAP: again = set_once(&h->keymap, optarg); break;
                case OPT_MODEL: again = set_once(&h->model, optarg); break;
                case 'h': cli_build_usage(stdout); return 1;
                case ':':
                default: return cli_getopt_error("build", options, c, argv, false);
                }
                if (again)
                        return usage_error("--%s given twice; give it once", option_name(c));
        }
        /* "--set DB_PASSWORD s3cret" leaves the secret here: named only
         * when it is a file (a base given without --base, say) */
        if (optind < argc && access(argv[optind], F_OK) == 0)
                return usage_error("unexpected argument '%s': every value goes with its option (--base IMAGE?)",
                                   argv[optind]);
        if (optind < argc)
                return usage_error("%s", "an unexpected argument (not shown: it may be a secret): every value goes "
                                         "with its option, and --set takes KEY=VALUE in one argument");
        if (o->host.password_hash && o->host.password_file)
                return usage_error("%s", "--password-hash and --password-file both give the password: give one");
        int r = check_file_args(o);
        if (r < 0)
                return r;
        if (!o->base)
                return usage_error("%s", "--base IMAGE is required");
        if (!o->out)
                return usage_error("%s", "-o OUT is required");
        if (o->fleet && o->role)
                return usage_error("%s", "--fleet and --role do not go together: the fleet names each host's role");
        if (!o->fleet && !o->role) {
                _cleanup_free_ char *roles = profile_roles_text();
                _cleanup_free_ char *none = roles ? NULL : profile_none_text();
                return roles ? usage_error("--role ROLE is required: one of %s", roles)
                             : usage_error("--role ROLE is required, but there are no roles: %s", none);
        }
        if (o->grow && o->no_grow)
                return usage_error("%s", "--grow and --no-grow contradict each other");
        const char *sde = source_date_epoch_malformed();
        if (sde)
                return log_error(EUSAGE, "SOURCE_DATE_EPOCH",
                                 "'%s' is not a number of seconds since 1970 (as `date +%%s` prints, such as "
                                 "1700000000); fix it or unset it",
                                 sde);
        /* a fleet's format comes from its file: checked once that is read */
        if (!o->fleet && (output_check_name(o->out) < 0 ||
                          compress_check_level(output_format_for(o->out), o->compression_level, o->out) < 0))
                return -EUSAGE;
        /* the files holding secrets, once the command line is good */
        for (size_t i = 0; i < o->nenv_files; i++)
                secret_file_check_mode(o->env_files[i]);
        if (o->host.password_file)
                secret_file_check_mode(o->host.password_file);
        if (o->host.wifi_psk_file)
                secret_file_check_mode(o->host.wifi_psk_file);
        return 0;
}

void cli_free(struct build_opts *o) {
        free(o->role);
        free(o->base);
        free(o->out);
        strv_clear(&o->env_files, &o->nenv_files);
        strv_clear_secret(&o->sets, &o->nsets);
        free(o->source);
        free(o->host_file);
        free(o->fleet);
        free(o->imager_json);
        host_free(&o->host);
        *o = (struct build_opts){0};
}
