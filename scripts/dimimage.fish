# fish completion for dimimage, installed in a vendor_completions.d
# directory.  It offers what the bash completion offers, with descriptions;
# scripts/lint.sh checks that the three completions (bash, zsh, fish) know
# exactly the options each command's --help names.

# The roles `dimimage profiles` lists ("ROLE   DESCRIPTION" a line).
# (fish reports a command it cannot find whatever 2> says: none if none.)
function __dimimage_roles
    command -q dimimage; or return
    dimimage profiles 2>/dev/null | string replace -r '^(\S+)\s+' '$1\t'
end

# Files, those ending in SUFFIX first.  The word without an option's
# "--opt=": fish 3.6's __fish_complete_suffix would complete it whole, and
# fish puts the "--opt=" before each of its answers again.
function __dimimage_files --argument-names suffix
    __fish_complete_suffix (string replace -r -- '^--[^=]*=' '' (commandline -ct)) $suffix
end

# Zone names are paths under /usr/share/zoneinfo: a region (Europe)
# completes to "Europe/" (no space after a '/'), ready for its cities.
function __dimimage_timezones
    set -l zone
    for zone in /usr/share/zoneinfo/(commandline -ct)*
        if test -d $zone
            echo (string replace /usr/share/zoneinfo/ '' -- $zone)/
        else
            string replace /usr/share/zoneinfo/ '' -- $zone
        end
    end
end

# True when flash's IMAGE is on the line already: the word being completed
# is the DEVICE.  (Words after `dimimage flash`; --bmap's value is no image.)
function __dimimage_flash_has_image
    set -l word
    set -l skip 0
    for word in (commandline -opc)[3..-1]
        if test $skip = 1
            set skip 0
        else if string match -q -- '-b' $word; or string match -q -- '--bmap' $word
            set skip 1
        else if not string match -q -- '-*' $word
            return 0
        end
    end
    return 1
end

set -l commands build inspect flash profiles cache version help
# No file names unless an option or argument takes one.
complete -c dimimage -f
complete -c dimimage -n "not __fish_seen_subcommand_from $commands" -a build -d 'write an image for a role (or every host of a fleet)'
complete -c dimimage -n "not __fish_seen_subcommand_from $commands" -a inspect -d "show an image's partitions, OS release and manifest"
complete -c dimimage -n "not __fish_seen_subcommand_from $commands" -a flash -d 'write an image to an SD card, then verify it'
complete -c dimimage -n "not __fish_seen_subcommand_from $commands" -a profiles -d 'list the roles that can be built'
complete -c dimimage -n "not __fish_seen_subcommand_from $commands" -a cache -d 'list or clean the decompressed-base cache'
complete -c dimimage -n "not __fish_seen_subcommand_from $commands" -a version -d 'print the version'
complete -c dimimage -n "not __fish_seen_subcommand_from $commands" -a help -d "print a command's help, as COMMAND --help does"
complete -c dimimage -n "not __fish_seen_subcommand_from $commands" -l help -d 'show the commands'
# help COMMAND: one command, whose help it prints
complete -c dimimage -n "__fish_seen_subcommand_from help; and not __fish_seen_subcommand_from $commands[1..-2]" -a "$commands[1..-2]"
complete -c dimimage -n "not __fish_seen_subcommand_from $commands" -l version -d 'print the version'

# build
set -l build '__fish_seen_subcommand_from build'
# (-k keeps the order: roles, then .yml files first among the files)
complete -c dimimage -n $build -l role -x -k -a '(__dimimage_roles) (__dimimage_files .yml)' -d 'the role to build'
complete -c dimimage -n $build -l base -r -F -d 'the Raspberry Pi OS image to start from'
complete -c dimimage -n $build -s o -l output -r -F -d 'the image to write (.img, .img.xz, .img.zst, .img.gz)'
complete -c dimimage -n $build -l fleet -r -k -a '(__dimimage_files .yml)' -d 'build every host of a fleet'
complete -c dimimage -n $build -l env -r -k -a '(__dimimage_files .env)' -d '.env file (docker compose syntax), later wins'
complete -c dimimage -n $build -l set -x -d 'KEY=VALUE, overriding the --env files'
complete -c dimimage -n $build -l source -r -F -d 'application source (directory or archive)'
complete -c dimimage -n $build -l host -r -k -a '(__dimimage_files .yml)' -d 'host settings from a file'
complete -c dimimage -n $build -l grow -x -d 'add SIZE (e.g. 512M) to the root filesystem'
complete -c dimimage -n $build -l no-grow -d 'refuse instead of growing when the payload does not fit'
complete -c dimimage -n $build -l no-cache -d 'do not use or fill the base cache'
complete -c dimimage -n $build -l allow-weak-secrets -d 'accept short or well-known passwords'
complete -c dimimage -n $build -l allow-built-base -d 'build over an image dimimage built'
complete -c dimimage -n $build -s f -l force -d 'overwrite OUT'
complete -c dimimage -n $build -l no-bmap -d 'do not write OUT.bmap'
complete -c dimimage -n $build -s q -l quiet -d 'print only warnings and errors'
complete -c dimimage -n $build -s v -l verbose -d "also each phase's time and the cache's decisions"
complete -c dimimage -n $build -l dry-run -d 'check everything and print what would be written'
complete -c dimimage -n $build -l compression-level -x -d 'for .xz/.zst/.gz outputs'
complete -c dimimage -n $build -l imager-json -r -k -a '(__dimimage_files .json)' -d 'write a Raspberry Pi Imager entry'
complete -c dimimage -n $build -l hostname -x -d 'the host name'
complete -c dimimage -n $build -l user -x -d 'the user to create'
complete -c dimimage -n $build -l password-hash -x -d "the user's password as a crypt hash"
complete -c dimimage -n $build -l password-file -r -F -d 'a file holding the password'
complete -c dimimage -n $build -l ssh-key -r -k -a '(__dimimage_files .pub)' -d 'an authorised public key'
complete -c dimimage -n $build -l ip -x -d 'static address ADDR/PREFIX'
complete -c dimimage -n $build -l gateway -x -d 'the gateway of --ip'
complete -c dimimage -n $build -l dns -x -d 'a name server'
complete -c dimimage -n $build -l wifi-ssid -x -d 'Wi-Fi network name'
complete -c dimimage -n $build -l wifi-psk-file -r -F -d 'a file holding the Wi-Fi passphrase'
complete -c dimimage -n $build -l wifi-country -x -d 'Wi-Fi regulatory country code'
complete -c dimimage -n $build -l wifi-hidden -d 'the network does not broadcast its SSID'
complete -c dimimage -n $build -l timezone -x -a '(__dimimage_timezones)' -d 'time zone'
complete -c dimimage -n $build -l locale -x -d locale
complete -c dimimage -n $build -l keymap -x -d 'keyboard layout'
complete -c dimimage -n $build -l model -x -d 'the Pi model' -a 'pi3b pi3b+ pi4-1gb pi4-2gb pi4-4gb pi4-8gb pi400
    pi5-1gb pi5-2gb pi5-4gb pi5-8gb pi5-16gb pi500 cm4-1gb cm4-2gb cm4-4gb cm4-8gb pizero2w'
complete -c dimimage -n $build -s h -l help -d 'show the options'

# inspect IMAGE
set -l inspect '__fish_seen_subcommand_from inspect'
complete -c dimimage -n $inspect -F
complete -c dimimage -n $inspect -l json -d 'machine-readable output'
complete -c dimimage -n $inspect -s h -l help -d 'show the options'

# flash IMAGE DEVICE: the image, then a block device (or a file)
set -l flash '__fish_seen_subcommand_from flash'
complete -c dimimage -n $flash -F
complete -c dimimage -n "$flash; and __dimimage_flash_has_image" -a '(__fish_complete_blockdevice)'
complete -c dimimage -n $flash -s b -l bmap -r -k -a '(__dimimage_files .bmap)' -d 'use this bmap instead of looking beside IMAGE'
complete -c dimimage -n $flash -l no-verify -d 'skip checksum checks while writing and the read-back'
complete -c dimimage -n $flash -s f -l force -d 'write to a non-removable disk or a partition'
complete -c dimimage -n $flash -s y -l yes -d 'do not ask before writing a device or a file that holds data'
complete -c dimimage -n $flash -s q -l quiet -d 'no progress'
complete -c dimimage -n $flash -s h -l help -d 'show the options'

# cache list|clean: one word, "cache list" takes nothing more
set -l cache '__fish_seen_subcommand_from cache; and not __fish_seen_subcommand_from list clean'
complete -c dimimage -n $cache -a list -d 'show cached bases and their size'
complete -c dimimage -n $cache -a clean -d 'remove them all'
complete -c dimimage -n $cache -l help -d 'show the options'
