#!/usr/bin/env bash
# Keeps the man pages honest against the code: every key the configuration
# loader accepts, every feature kind and rule mode is in tailord.yaml(5), and
# every tailorctl command and option is in tailorctl(1).  The lists come from
# the sources themselves (the loader's known-keys arrays in lib/config*.c, the
# kinds table in lib/feature.c, the mode names in lib/rule.c, tailorctl's
# command table and each command's getopt options), so a key or option added
# to the code without its documentation fails here, naming it.  Run from the
# source root (tests/run.sh does); appends "passed failed" to
# $TAILOR_TEST_COUNTS like the CUnit programs.
set -u
. tests/install/check.sh

# The words a roff page sets in bold: the arguments of .B, the alternate
# arguments of .BR/.RB/.BI/.IB, and \fB...\fR runs, split at anything that
# cannot be in a key (so "daemon.shutdown_timeout" gives both words).
bold_words() {
  perl -ne '
    sub args { my @a; my $s = shift;
      while ($s =~ /\G\s*(?:"((?:[^"]|"")*)"|(\S+))/gc) { push @a, defined $1 ? $1 : $2 } @a }
    sub out { for my $t (@_) { $t =~ s/\\f[BIRP]//g; $t =~ s/\\-/-/g;
      print "$_\n" for grep { length } split /[^A-Za-z0-9_]+/, $t } }
    chomp;
    if (/^\.B\s+(.*)/) { out(args($1)) }
    elsif (/^\.(BR|RB|BI|IB)\s+(.*)/) {
      my ($m, @a) = ($1, args($2)); my $first = ($m =~ /^B/) ? 0 : 1;
      for my $i (0 .. $#a) { out($a[$i]) if $i % 2 == $first } }
    while (/\\fB(.*?)(?=\\f[IRP]|$)/g) { out($1) }
  ' "$1" | sort -u
}

# "WHERE NAME" for the configuration keys: the string literals of every
# known-keys array (static const char *const ...keys[] = {...}) in lib/config*.c.
config_keys() {
  perl -0777 -ne '
    while (/static const char \*const (\w*keys)\[\]\s*=\s*\{(.*?)\};/sg) {
      my ($arr, $body, $at) = ($1, $2, substr($_, 0, $-[0]) =~ tr/\n//);
      print "$ARGV:", $at + 1, " $_\n" for $body =~ /"([^"]+)"/g }
  ' lib/config*.c
}
kinds() { # the feature kinds table of lib/feature.c
  perl -ne 'print "lib/feature.c:$. $1\n" if /^\s*\[TL_FK_\w+\]\s*=\s*\{"(\w+)"/' lib/feature.c
}
modes() { # the rule mode names of lib/rule.c
  perl -ne 'if (/mode_names\[\]\s*=\s*\{(.*?)\}/) { print "lib/rule.c:$. $_\n" for $1 =~ /"(\w+)"/g }' lib/rule.c
}

# in_page LIST PAGE WHAT: every name of LIST ("WHERE NAME" lines) is a bold
# word of PAGE; names each one missing.
in_page() {
  local list=$1 page=$2 what=$3 words where name ok=0
  words=$(bold_words "$page")
  [ -n "$list" ] || { echo "no ${what}s found in the sources"; return 1; }
  while read -r where name; do
    grep -qxF -- "$name" <<<"$words" && continue
    echo "$page: $what '$name' ($where) is not documented"
    ok=1
  done <<<"$list"
  return $ok
}
check "every configuration key is in tailord.yaml(5)" \
  in_page "$(config_keys)" man/tailord.yaml.5 "key"
check "every feature kind is in tailord.yaml(5)" \
  in_page "$(kinds)" man/tailord.yaml.5 "feature kind"
check "every rule mode is in tailord.yaml(5)" \
  in_page "$(modes)" man/tailord.yaml.5 "rule mode"

# "COMMAND SPELLINGS..." for tailorctl: the command table of
# daemon/tailorctl.c, and for each command's function its options, one line
# each: "-x --long" (either spelling documents it), help left out (the page
# says once that every command has --help).
ctl_options() {
  perl -0777 -ne '
    my ($tab) = /static const command commands\[\]\s*=\s*\{(.*?)\n\};/s or die "no command table\n";
    while ($tab =~ /\{"([\w-]+)",\s*(\w+),/g) {
      my ($cmd, $fn) = ($1, $2);
      my ($body) = /\nstatic int \Q$fn\E\(.*?\n\{(.*?)\n\}/s or die "no function $fn\n";
      print "$cmd\n";
      my %long; my ($short) = $body =~ /getopt_long\([^"]*"([^"]*)"/;
      $short //= "";
      while ($body =~ /\{"([\w-]+)",\s*\w+_argument,\s*NULL,\s*\x27(.)\x27\}/g) {
        push @{$long{$2}}, "--$1" }
      my %seen;
      for my $c ((split //, $short =~ s/://gr), sort keys %long) {
        next if $c eq "h" || $seen{$c}++;
        my @sp = (index($short, $c) >= 0 ? ("-$c") : (), @{$long{$c} // []});
        print "$cmd @sp\n" }
    }
  ' daemon/tailorctl.c
}
# The entry of COMMAND in tailorctl(1): from its .TP to the next command's,
# escapes and fonts removed.
ctl_entry() {
  perl -ne '
    BEGIN { $want = shift @ARGV }
    $in = 1 if /^\.SH COMMANDS/; $in = 0 if /^\.SH (?!COMMANDS)/;
    next unless $in;
    if (/^\.TP/) { $tp = 1; $on = 0; next }  # an item: its tag line follows
    if ($tp) { my $l = $_; $l =~ s/^\.\w+\s+//; $l =~ s/\\f[BIRP]//g; $l =~ s/^[\s"(]+//;
               my ($w) = $l =~ /^([\w-]+)/; $on = defined $w && $w eq $want; $tp = 0 }
    next unless $on;
    s/\\-/-/g; s/\\f[BIRP]//g; print;
  ' "$1" man/tailorctl.1
}
ctl_documented() {
  local opts cmd spellings entry ok=0 s found
  opts=$(ctl_options) || return 1
  while read -r cmd spellings; do
    entry=$(ctl_entry "$cmd")
    if [ -z "$entry" ]; then
      [ -n "$spellings" ] || { echo "man/tailorctl.1: command '$cmd' is not documented"; ok=1; }
      continue
    fi
    [ -n "$spellings" ] || continue
    found=0
    for s in $spellings; do
      grep -qE -- "(^|[^A-Za-z0-9-])$s([^A-Za-z0-9-]|$)" <<<"$entry" && found=1
    done
    [ $found = 1 ] || { echo "man/tailorctl.1: $cmd option $spellings is not documented"; ok=1; }
  done <<<"$opts"
  [ -n "$opts" ] || { echo "no tailorctl commands found"; return 1; }
  return $ok
}
check "every tailorctl command and option is in tailorctl(1)" ctl_documented

finish docs
