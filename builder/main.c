/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Command dispatch: each command owns its options and --help. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "build.h"
#include "cache.h"
#include "cli.h"
#include "flash.h"
#include "inspect.h"
#include "log.h"
#include "profile.h"
#include "util.h"

static void usage(FILE *f) {
        fputs("Usage: dimimage COMMAND [OPTIONS]\n"
              "\n"
              "Turn a Raspberry Pi OS image into ready-to-flash images for the DimDim Health\n"
              "stack, without root: the image's FAT and ext4 partitions are edited in place.\n"
              "\n"
              "Commands:\n"
              "  build      write an image for a role (or every host of a fleet)\n"
              "  inspect    show an image's partitions, OS release and dimimage manifest\n"
              "  flash      write an image to an SD card, then verify it\n"
              "  profiles   list the roles that can be built\n"
              "  cache      list or clean the decompressed-base cache\n"
              "  version    print the version\n"
              "  help       this text, or with a COMMAND, that command's help\n"
              "\n"
              "Run `dimimage help COMMAND` (or `dimimage COMMAND --help`) for a command's\n"
              "options; `man dimimage` for more.\n"
              "\n"
              "Example:\n"
              "  dimimage build --role app --base raspios-lite.img.xz --env app.env \\\n"
              "      --source dimdim-health.tar.gz --hostname dimdim-app --user pi \\\n"
              "      --ssh-key ~/.ssh/id_ed25519.pub -o app.img\n"
              "  dimimage flash app.img /dev/sdX\n",
              f);
}

static bool is_help(const char *arg) {
        return !strcmp(arg, "--help") || !strcmp(arg, "-h");
}

/* -h or --help anywhere among args, as getopt finds it for the commands
 * that take options: "profiles x --help" is help, not an error. */
static bool wants_help(int argc, char **argv) {
        for (int i = 1; i < argc; i++)
                if (is_help(argv[i]))
                        return true;
        return false;
}

/* A word after a command that takes none: an option of its own it does not
 * have, or an argument. */
static int no_arguments(const char *cmd, const char *arg) {
        if (arg[0] == '-' && arg[1])
                return cli_unknown_option(cmd, arg, false);
        return cli_usage_error(cmd, "takes no arguments: %s", arg);
}

static int cmd_profiles(int argc, char **argv) {
        if (wants_help(argc, argv)) {
                puts("Usage: dimimage profiles\n\nList the roles `dimimage build --role` accepts, from "
                     "the profiles directory.");
                return 0;
        }
        if (argc > 1)
                return no_arguments("profiles", argv[1]);
        size_t n = 0;
        char **roles = profile_list_roles(&n);
        int r = 0;
        for (size_t i = 0; i < n; i++) {
                _cleanup_free_ char *path = profile_path_for(roles[i]);
                struct profile p = {0};
                if (profile_load(path, &p) >= 0) {
                        printf("%-16s %s\n", roles[i], p.description ? p.description : "");
                        profile_free(&p);
                } else
                        r = -EINVAL;
                free(roles[i]);
        }
        free(roles);
        if (!n) {
                _cleanup_free_ char *none = profile_none_text();
                return log_error(ENOENT, NULL, "%s", none);
        }
        return r;
}

static int cmd_cache(int argc, char **argv) {
        if (argc < 2)
                return cli_usage_error("cache", "expected `dimimage cache list` or `dimimage cache clean`");
        const char *sub = argv[1];
        bool known = !strcmp(sub, "list") || !strcmp(sub, "clean");
        /* "cache --help", "cache list --help", as for every other command */
        if (wants_help(argc, argv)) {
                puts("Usage: dimimage cache list|clean\n\n"
                     "Compressed bases are kept decompressed under $XDG_CACHE_HOME/dimimage\n"
                     "(~/.cache/dimimage), so rebuilding from the same .img.xz is a copy.\n"
                     "  list   show cached bases and their size\n"
                     "  clean  remove them all\n"
                     "DIMIMAGE_CACHE_MAX bounds the cache size (default 8G); build --no-cache skips it.");
                return 0;
        }
        if (sub[0] == '-' && sub[1])
                return cli_unknown_option("cache", sub, false);
        if (!known)
                return cli_usage_error("cache", "unknown subcommand '%s': expected `dimimage cache list` or "
                                                "`dimimage cache clean`",
                                       sub);
        if (argc > 2 && argv[2][0] == '-' && argv[2][1])
                return cli_unknown_option("cache", argv[2], false);
        if (argc > 2)
                return cli_usage_error("cache", "%s takes no arguments: %s", sub, argv[2]);
        return !strcmp(sub, "list") ? cache_list(stdout) : cache_clean();
}

static int cmd_version(int argc, char **argv) {
        if (wants_help(argc, argv)) {
                puts("Usage: dimimage version\n\nPrint dimimage's version.");
                return 0;
        }
        if (argc > 1)
                return no_arguments("version", argv[1]);
        puts("dimimage " DIMIMAGE_VERSION);
        return 0;
}

static const struct command {
        const char *name;
        int (*run)(int argc, char **argv);
} commands[] = {
        {"build", cmd_build},       {"inspect", cmd_inspect}, {"flash", cmd_flash},
        {"profiles", cmd_profiles}, {"cache", cmd_cache},     {"version", cmd_version},
};

static const struct command *find_command(const char *name) {
        for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
                if (!strcmp(commands[i].name, name))
                        return &commands[i];
        return NULL;
}

/* "dimimage help COMMAND" is "dimimage COMMAND --help", as git and
 * systemctl have it; "dimimage help" (or "help help") is the overview. */
static int cmd_help(int argc, char **argv) {
        if (argc > 2)
                return log_error(EUSAGE, "help", "takes one command, not also '%s' (see `dimimage --help`)", argv[2]);
        if (argc < 2 || is_help(argv[1]) || !strcmp(argv[1], "help")) {
                usage(stdout);
                return 0;
        }
        const struct command *c = find_command(argv[1]);
        if (!c)
                return log_error(EUSAGE, "help", "unknown command '%s' (see `dimimage --help`)", argv[1]);
        char *args[] = {(char *)c->name, (char *)"--help", NULL};
        return c->run(2, args);
}

int main(int argc, char **argv) {
        /* A file grown past `ulimit -f` raises SIGXFSZ, whose default kills
         * us with the temporaries beside OUT left behind; ignored, the write
         * fails with EFBIG instead, which is reported and cleaned up after. */
        signal(SIGXFSZ, SIG_IGN);
        if (argc < 2) {
                usage(stderr);
                return EX_USAGE;
        }
        const char *cmd = argv[1];
        int r;
        const struct command *c = find_command(cmd);
        if (c)
                r = c->run(argc - 1, argv + 1);
        else if (!strcmp(cmd, "help"))
                r = cmd_help(argc - 1, argv + 1);
        else if (is_help(cmd)) {
                usage(stdout);
                r = 0;
        } else if (!strcmp(cmd, "--version"))
                r = cmd_version(argc - 1, argv + 1);
        else if (cmd[0] == '-' && cmd[1])
                r = cli_unknown_option(NULL, cmd, false);
        else
                r = cli_usage_error(NULL, "unknown command '%s'", cmd);
        /* what went to stdout (a dry run's plan, the roles, the cache
         * list) is the command's result: lost, it is not a success */
        if (r >= 0 && (fflush(stdout) != 0 || ferror(stdout)))
                r = log_error(errno ? errno : EIO, "stdout", "cannot write: %m");
        if (r >= 0)
                return 0;
        return exit_code_for(r);
}
