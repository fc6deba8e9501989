#!/bin/sh
# Entrypoint of the broker container of docker-compose.yml (eclipse-mosquitto image: Alpine, busybox).
# Runs as root, prepares what deploy/mosquitto/hatang.conf expects, then starts mosquitto, which drops
# to the image's user mosquitto (uid 1883) before it reads the password file, the ACL and the TLS key.
set -eu

broker=/etc/hatang/fleet/broker       # the fleet directory's broker/, mounted read-only
shipped=/etc/mosquitto/hatang         # deploy/mosquitto/, mounted read-only

# hatang.conf names the ACL as /etc/mosquitto/hatang.acl. A link, not a copy: an edited ACL takes
# effect on SIGHUP like the password file.
ln -sf "$shipped/hatang.acl" /etc/mosquitto/hatang.acl

# `hatang fleet init` gives the broker's files (server.key, mosquitto.passwd: mode 0640) and broker/
# (0750) to the host's group "mosquitto". Let the container's user mosquitto read them through that
# group, whatever its number on the host.
gid=$(stat -c %g "$broker")
if [ "$gid" = 0 ]; then
    echo "hatang: $broker belongs to group root on the host: the broker (user mosquitto) cannot read it." >&2
    echo "hatang: create the group first (groupadd --system --gid 1883 mosquitto), then give it the" >&2
    echo "hatang: fleet directory's broker files: see deploy/compose/README.md." >&2
    exit 1
fi
if [ "$gid" != "$(id -g mosquitto)" ]; then
    group=$(awk -F: -v gid="$gid" '$3 == gid { print $1; exit }' /etc/group)
    if [ -z "$group" ]; then
        group=hatang-broker
        addgroup -g "$gid" "$group"
    fi
    addgroup mosquitto "$group"
fi

# persistence_location of hatang.conf, on the volume mosquitto-data
mkdir -p /var/lib/mosquitto
chown mosquitto:mosquitto /var/lib/mosquitto
chmod 0700 /var/lib/mosquitto

exec /usr/sbin/mosquitto -c "$shipped/hatang.conf"
