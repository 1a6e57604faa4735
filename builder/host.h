/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Host settings: hostname, user, SSH keys, network, Wi-Fi, time zone,
 * locale, keyboard — from command-line options, a --host YAML file, or a
 * fleet file's host entry.  Validated here, before anything is written. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "yamltree.h"

/* The settings a message may have to place in a file (host_settings.where). */
enum host_field {
        HF_HOSTNAME, HF_USER, HF_PASSWORD, HF_IP, HF_GATEWAY, HF_DNS, HF_WIFI_SSID, HF_WIFI_PSK, HF_WIFI_COUNTRY,
        HF_WIFI_HIDDEN,
        HF_TIMEZONE, HF_LOCALE, HF_KEYMAP, HF_MODEL, HF_SSH_KEYS, HF_N,
};

struct host_settings {
        char *hostname;
        char *user;
        char *password_hash;    /* crypt(3) string */
        char *password_file;    /* file holding a plain password: hashed, never stored */
        char **ssh_key_files;   /* files with public keys */
        size_t nssh_key_files;
        char **ssh_keys;        /* public key lines (from files or YAML), checked as read */
        size_t nssh_keys;
        char *ip;               /* "192.168.1.101/24" */
        char *gateway;
        char **dns;
        size_t ndns;
        char *wifi_ssid;
        char *wifi_psk_file;
        char *wifi_pass;        /* wifi_psk_file's passphrase once read (host_read_files):
                                 * the file stays, to name in messages */
        char *wifi_psk_hex;     /* derived PBKDF2 key: the only form stored */
        char *wifi_country;
        int wifi_hidden;        /* 1: the network does not broadcast its SSID (NetworkManager
                                 * probes for it), -1: it does (said so), 0: not said */
        char *timezone;
        char *locale;
        char *keymap;
        char *model;            /* Pi model, e.g. "pi4-4gb" (fleet guard) */
        char **extra_hosts;     /* "ADDR NAME..." lines for /etc/hosts (fleet) */
        size_t nextra_hosts;
        /* where settings came from, for messages: origin as a whole, and
         * "file:line" of each value read from YAML (NULL: an option's) */
        char *origin;
        char *where[HF_N];
};

/* Fill hs from a YAML mapping (a --host file's root or a fleet host). */
int host_from_yaml(const char *file, const struct ynode *n, struct host_settings *hs);
int host_load_file(const char *file, struct host_settings *hs);
/* Values set in over replace those in hs; list values are appended. */
void host_merge(struct host_settings *hs, const struct host_settings *over);
/* The password file, the SSH key files and the Wi-Fi passphrase file, read
 * into the hash, the keys and the passphrase (whose key needs the SSID,
 * which may come later); host_finalize does it too.  A fleet reads the
 * settings every host shares once: a pipe such as /dev/stdin gives its text
 * to one read. */
int host_read_files(struct host_settings *hs, bool allow_weak);
/* Read key/password/PSK files, derive hashes, validate everything.
 * Afterwards password_file and wifi_psk_file are consumed.  allow_weak
 * (--allow-weak-secrets, a policy rather than a host's setting): a weak
 * password from password_file warns instead of failing. */
int host_finalize(struct host_settings *hs, bool allow_weak);
/* What a message about field f names: its file:line, else the origin,
 * else the option that sets it ("--gateway"). */
const char *host_where(const struct host_settings *hs, enum host_field f);
void host_free(struct host_settings *hs);

bool host_valid_hostname(const char *s);
/* "a.b.c.d/p" -> address and prefix; false when malformed. */
bool host_parse_cidr(const char *s, char addr[16], unsigned *prefix);
/* The prefix length netmask s stands for ("255.255.255.0": 24; 0 to 32),
 * -ENOENT when s is no dotted IPv4 address, -EINVAL when it is one whose
 * 1 bits do not all come first (no netmask). */
int host_netmask_prefix(const char *s);
bool host_valid_ipv4(const char *s);
