# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_posctl_global_optspecs
    string join \n socket= json h/help V/version
end

function __fish_posctl_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_posctl_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_posctl_using_subcommand
    set -l cmd (__fish_posctl_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c posctl -n "__fish_posctl_needs_command" -l socket -d 'posd\'s control socket' -r -F
complete -c posctl -n "__fish_posctl_needs_command" -l json -d 'One JSON document on stdout, failures included ({"ok":false,"code":...,"error":...})'
complete -c posctl -n "__fish_posctl_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c posctl -n "__fish_posctl_needs_command" -s V -l version -d 'Print version'
complete -c posctl -n "__fish_posctl_needs_command" -f -a "status" -d 'The terminal\'s status'
complete -c posctl -n "__fish_posctl_needs_command" -f -a "queue" -d 'Events waiting for the host\'s acknowledgement'
complete -c posctl -n "__fish_posctl_needs_command" -f -a "txn" -d 'Transactions in the journal'
complete -c posctl -n "__fish_posctl_needs_command" -f -a "sale" -d 'Start a sale and wait for its end. Without --code, any scanner, the camera or the keypad completes it'
complete -c posctl -n "__fish_posctl_needs_command" -f -a "refund" -d 'Refund all or part of a sale (online only; needs the manager PIN)'
complete -c posctl -n "__fish_posctl_needs_command" -f -a "void" -d 'Void an offline sale not yet settled (needs the manager PIN)'
complete -c posctl -n "__fish_posctl_needs_command" -f -a "batch-close" -d 'Close the batch: Z report printed and sent to the host for reconciliation'
complete -c posctl -n "__fish_posctl_needs_command" -f -a "batches" -d 'Batch closes and the host\'s reconciliation, newest first'
complete -c posctl -n "__fish_posctl_needs_command" -f -a "current" -d 'The sale in progress and the merchant QR it shows'
complete -c posctl -n "__fish_posctl_needs_command" -f -a "cancel" -d 'Cancel the sale in progress (an online payment in progress is reversed)'
complete -c posctl -n "__fish_posctl_needs_command" -f -a "scan" -d 'Pass a code to the sale (or refund) waiting for one, as if scanned; refused when nothing waits'
complete -c posctl -n "__fish_posctl_needs_command" -f -a "reprint" -d 'Print a receipt, pay slip or Z report again, marked REPRINT (default: the last transaction\'s receipt). Any final state: settled, voided, refunded, declined, ...'
complete -c posctl -n "__fish_posctl_needs_command" -f -a "receipt" -d 'Receipts: draw one as posd would print it, without a printer'
complete -c posctl -n "__fish_posctl_needs_command" -f -a "print-jobs" -d 'The durable print queue'
complete -c posctl -n "__fish_posctl_needs_command" -f -a "manager" -d 'Manager PIN: make the hash for `[manager] pin_hash`'
complete -c posctl -n "__fish_posctl_needs_command" -f -a "code" -d 'Payment codes: decode images, inspect scanned text'
complete -c posctl -n "__fish_posctl_needs_command" -f -a "devices" -d 'Devices on this box: kind, VID:PID, by-id path, and the role and state posd gives them'
complete -c posctl -n "__fish_posctl_needs_command" -f -a "fleet" -d 'Fleet management: signing keys, signed config pushes and commands, fleet status'
complete -c posctl -n "__fish_posctl_needs_command" -f -a "completions" -d 'Print the shell completion script for posctl'
complete -c posctl -n "__fish_posctl_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c posctl -n "__fish_posctl_using_subcommand status" -l socket -d 'posd\'s control socket' -r -F
complete -c posctl -n "__fish_posctl_using_subcommand status" -l json -d 'One JSON document on stdout, failures included ({"ok":false,"code":...,"error":...})'
complete -c posctl -n "__fish_posctl_using_subcommand status" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c posctl -n "__fish_posctl_using_subcommand queue" -l socket -d 'posd\'s control socket' -r -F
complete -c posctl -n "__fish_posctl_using_subcommand queue" -l json -d 'One JSON document on stdout, failures included ({"ok":false,"code":...,"error":...})'
complete -c posctl -n "__fish_posctl_using_subcommand queue" -s h -l help -d 'Print help'
complete -c posctl -n "__fish_posctl_using_subcommand txn; and not __fish_seen_subcommand_from list show help" -l socket -d 'posd\'s control socket' -r -F
complete -c posctl -n "__fish_posctl_using_subcommand txn; and not __fish_seen_subcommand_from list show help" -l json -d 'One JSON document on stdout, failures included ({"ok":false,"code":...,"error":...})'
complete -c posctl -n "__fish_posctl_using_subcommand txn; and not __fish_seen_subcommand_from list show help" -s h -l help -d 'Print help'
complete -c posctl -n "__fish_posctl_using_subcommand txn; and not __fish_seen_subcommand_from list show help" -f -a "list" -d 'Transactions, newest first: a table for people'
complete -c posctl -n "__fish_posctl_using_subcommand txn; and not __fish_seen_subcommand_from list show help" -f -a "show" -d 'One transaction and its history: by its id, the receipt\'s 12-digit reference or the text of the receipt\'s QR'
complete -c posctl -n "__fish_posctl_using_subcommand txn; and not __fish_seen_subcommand_from list show help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c posctl -n "__fish_posctl_using_subcommand txn; and __fish_seen_subcommand_from list" -l limit -r
complete -c posctl -n "__fish_posctl_using_subcommand txn; and __fish_seen_subcommand_from list" -l socket -d 'posd\'s control socket' -r -F
complete -c posctl -n "__fish_posctl_using_subcommand txn; and __fish_seen_subcommand_from list" -l json -d 'One JSON document on stdout, failures included ({"ok":false,"code":...,"error":...})'
complete -c posctl -n "__fish_posctl_using_subcommand txn; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c posctl -n "__fish_posctl_using_subcommand txn; and __fish_seen_subcommand_from show" -l socket -d 'posd\'s control socket' -r -F
complete -c posctl -n "__fish_posctl_using_subcommand txn; and __fish_seen_subcommand_from show" -l json -d 'One JSON document on stdout, failures included ({"ok":false,"code":...,"error":...})'
complete -c posctl -n "__fish_posctl_using_subcommand txn; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help'
complete -c posctl -n "__fish_posctl_using_subcommand txn; and __fish_seen_subcommand_from help" -f -a "list" -d 'Transactions, newest first: a table for people'
complete -c posctl -n "__fish_posctl_using_subcommand txn; and __fish_seen_subcommand_from help" -f -a "show" -d 'One transaction and its history: by its id, the receipt\'s 12-digit reference or the text of the receipt\'s QR'
complete -c posctl -n "__fish_posctl_using_subcommand txn; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c posctl -n "__fish_posctl_using_subcommand sale" -l amount -d 'Amount in the currency\'s units, e.g. 12.50' -r
complete -c posctl -n "__fish_posctl_using_subcommand sale" -l currency -r
complete -c posctl -n "__fish_posctl_using_subcommand sale" -l code -r
complete -c posctl -n "__fish_posctl_using_subcommand sale" -l method -d 'merchant_qr: the terminal shows a code for the customer to scan; code (default) or card: the customer presents a code or swipes a card' -r
complete -c posctl -n "__fish_posctl_using_subcommand sale" -l socket -d 'posd\'s control socket' -r -F
complete -c posctl -n "__fish_posctl_using_subcommand sale" -l json -d 'One JSON document on stdout, failures included ({"ok":false,"code":...,"error":...})'
complete -c posctl -n "__fish_posctl_using_subcommand sale" -s h -l help -d 'Print help'
complete -c posctl -n "__fish_posctl_using_subcommand refund" -l original -d 'The sale\'s transaction id' -r
complete -c posctl -n "__fish_posctl_using_subcommand refund" -l receipt -d 'The text of the sale receipt\'s QR (R1.<terminal>.<txn>)' -r
complete -c posctl -n "__fish_posctl_using_subcommand refund" -l amount -d 'Amount in the currency\'s units; default: what is left to refund' -r
complete -c posctl -n "__fish_posctl_using_subcommand refund" -l refund-id -d 'Idempotency key: repeating a refund with it never refunds twice' -r
complete -c posctl -n "__fish_posctl_using_subcommand refund" -l pin -d 'The manager PIN (default: $POSD_MANAGER_PIN)' -r
complete -c posctl -n "__fish_posctl_using_subcommand refund" -l socket -d 'posd\'s control socket' -r -F
complete -c posctl -n "__fish_posctl_using_subcommand refund" -l json -d 'One JSON document on stdout, failures included ({"ok":false,"code":...,"error":...})'
complete -c posctl -n "__fish_posctl_using_subcommand refund" -s h -l help -d 'Print help'
complete -c posctl -n "__fish_posctl_using_subcommand void" -l pin -r
complete -c posctl -n "__fish_posctl_using_subcommand void" -l socket -d 'posd\'s control socket' -r -F
complete -c posctl -n "__fish_posctl_using_subcommand void" -l json -d 'One JSON document on stdout, failures included ({"ok":false,"code":...,"error":...})'
complete -c posctl -n "__fish_posctl_using_subcommand void" -s h -l help -d 'Print help'
complete -c posctl -n "__fish_posctl_using_subcommand batch-close" -l socket -d 'posd\'s control socket' -r -F
complete -c posctl -n "__fish_posctl_using_subcommand batch-close" -l json -d 'One JSON document on stdout, failures included ({"ok":false,"code":...,"error":...})'
complete -c posctl -n "__fish_posctl_using_subcommand batch-close" -s h -l help -d 'Print help'
complete -c posctl -n "__fish_posctl_using_subcommand batches" -l socket -d 'posd\'s control socket' -r -F
complete -c posctl -n "__fish_posctl_using_subcommand batches" -l json -d 'One JSON document on stdout, failures included ({"ok":false,"code":...,"error":...})'
complete -c posctl -n "__fish_posctl_using_subcommand batches" -s h -l help -d 'Print help'
complete -c posctl -n "__fish_posctl_using_subcommand current" -l socket -d 'posd\'s control socket' -r -F
complete -c posctl -n "__fish_posctl_using_subcommand current" -l json -d 'One JSON document on stdout, failures included ({"ok":false,"code":...,"error":...})'
complete -c posctl -n "__fish_posctl_using_subcommand current" -s h -l help -d 'Print help'
complete -c posctl -n "__fish_posctl_using_subcommand cancel" -l socket -d 'posd\'s control socket' -r -F
complete -c posctl -n "__fish_posctl_using_subcommand cancel" -l json -d 'One JSON document on stdout, failures included ({"ok":false,"code":...,"error":...})'
complete -c posctl -n "__fish_posctl_using_subcommand cancel" -s h -l help -d 'Print help'
complete -c posctl -n "__fish_posctl_using_subcommand scan" -l socket -d 'posd\'s control socket' -r -F
complete -c posctl -n "__fish_posctl_using_subcommand scan" -l json -d 'One JSON document on stdout, failures included ({"ok":false,"code":...,"error":...})'
complete -c posctl -n "__fish_posctl_using_subcommand scan" -s h -l help -d 'Print help'
complete -c posctl -n "__fish_posctl_using_subcommand reprint" -l batch -d 'The Z report of this batch number' -r
complete -c posctl -n "__fish_posctl_using_subcommand reprint" -l socket -d 'posd\'s control socket' -r -F
complete -c posctl -n "__fish_posctl_using_subcommand reprint" -l pay-slip -d 'The pay slip (the merchant QR offered) of the order TXN instead of its receipt'
complete -c posctl -n "__fish_posctl_using_subcommand reprint" -l json -d 'One JSON document on stdout, failures included ({"ok":false,"code":...,"error":...})'
complete -c posctl -n "__fish_posctl_using_subcommand reprint" -s h -l help -d 'Print help'
complete -c posctl -n "__fish_posctl_using_subcommand receipt; and not __fish_seen_subcommand_from render help" -l socket -d 'posd\'s control socket' -r -F
complete -c posctl -n "__fish_posctl_using_subcommand receipt; and not __fish_seen_subcommand_from render help" -l json -d 'One JSON document on stdout, failures included ({"ok":false,"code":...,"error":...})'
complete -c posctl -n "__fish_posctl_using_subcommand receipt; and not __fish_seen_subcommand_from render help" -s h -l help -d 'Print help'
complete -c posctl -n "__fish_posctl_using_subcommand receipt; and not __fish_seen_subcommand_from render help" -f -a "render" -d 'Interpret the ESC/POS bytes posd would send and draw them: --png FILE and/or --text'
complete -c posctl -n "__fish_posctl_using_subcommand receipt; and not __fish_seen_subcommand_from render help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c posctl -n "__fish_posctl_using_subcommand receipt; and __fish_seen_subcommand_from render" -l batch -d 'The Z report of this batch number' -r
complete -c posctl -n "__fish_posctl_using_subcommand receipt; and __fish_seen_subcommand_from render" -l png -r -F
complete -c posctl -n "__fish_posctl_using_subcommand receipt; and __fish_seen_subcommand_from render" -l socket -d 'posd\'s control socket' -r -F
complete -c posctl -n "__fish_posctl_using_subcommand receipt; and __fish_seen_subcommand_from render" -l last
complete -c posctl -n "__fish_posctl_using_subcommand receipt; and __fish_seen_subcommand_from render" -l pay-slip -d 'The pay slip of the order TXN instead of its receipt'
complete -c posctl -n "__fish_posctl_using_subcommand receipt; and __fish_seen_subcommand_from render" -l text
complete -c posctl -n "__fish_posctl_using_subcommand receipt; and __fish_seen_subcommand_from render" -l json -d 'One JSON document on stdout, failures included ({"ok":false,"code":...,"error":...})'
complete -c posctl -n "__fish_posctl_using_subcommand receipt; and __fish_seen_subcommand_from render" -s h -l help -d 'Print help'
complete -c posctl -n "__fish_posctl_using_subcommand receipt; and __fish_seen_subcommand_from help" -f -a "render" -d 'Interpret the ESC/POS bytes posd would send and draw them: --png FILE and/or --text'
complete -c posctl -n "__fish_posctl_using_subcommand receipt; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c posctl -n "__fish_posctl_using_subcommand print-jobs" -l socket -d 'posd\'s control socket' -r -F
complete -c posctl -n "__fish_posctl_using_subcommand print-jobs" -l json -d 'One JSON document on stdout, failures included ({"ok":false,"code":...,"error":...})'
complete -c posctl -n "__fish_posctl_using_subcommand print-jobs" -s h -l help -d 'Print help'
complete -c posctl -n "__fish_posctl_using_subcommand manager; and not __fish_seen_subcommand_from hash-pin help" -l socket -d 'posd\'s control socket' -r -F
complete -c posctl -n "__fish_posctl_using_subcommand manager; and not __fish_seen_subcommand_from hash-pin help" -l json -d 'One JSON document on stdout, failures included ({"ok":false,"code":...,"error":...})'
complete -c posctl -n "__fish_posctl_using_subcommand manager; and not __fish_seen_subcommand_from hash-pin help" -s h -l help -d 'Print help'
complete -c posctl -n "__fish_posctl_using_subcommand manager; and not __fish_seen_subcommand_from hash-pin help" -f -a "hash-pin" -d 'Prints the argon2id hash of a PIN read from stdin (one line), for `[manager] pin_hash`'
complete -c posctl -n "__fish_posctl_using_subcommand manager; and not __fish_seen_subcommand_from hash-pin help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c posctl -n "__fish_posctl_using_subcommand manager; and __fish_seen_subcommand_from hash-pin" -l socket -d 'posd\'s control socket' -r -F
complete -c posctl -n "__fish_posctl_using_subcommand manager; and __fish_seen_subcommand_from hash-pin" -l json -d 'One JSON document on stdout, failures included ({"ok":false,"code":...,"error":...})'
complete -c posctl -n "__fish_posctl_using_subcommand manager; and __fish_seen_subcommand_from hash-pin" -s h -l help -d 'Print help'
complete -c posctl -n "__fish_posctl_using_subcommand manager; and __fish_seen_subcommand_from help" -f -a "hash-pin" -d 'Prints the argon2id hash of a PIN read from stdin (one line), for `[manager] pin_hash`'
complete -c posctl -n "__fish_posctl_using_subcommand manager; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c posctl -n "__fish_posctl_using_subcommand code; and not __fish_seen_subcommand_from inspect scan-image help" -l socket -d 'posd\'s control socket' -r -F
complete -c posctl -n "__fish_posctl_using_subcommand code; and not __fish_seen_subcommand_from inspect scan-image help" -l json -d 'One JSON document on stdout, failures included ({"ok":false,"code":...,"error":...})'
complete -c posctl -n "__fish_posctl_using_subcommand code; and not __fish_seen_subcommand_from inspect scan-image help" -s h -l help -d 'Print help'
complete -c posctl -n "__fish_posctl_using_subcommand code; and not __fish_seen_subcommand_from inspect scan-image help" -f -a "inspect" -d 'Classify scanned text and print every parsed field; exit 4 with the reason if a sale would refuse it'
complete -c posctl -n "__fish_posctl_using_subcommand code; and not __fish_seen_subcommand_from inspect scan-image help" -f -a "scan-image" -d 'Run the camera\'s decode pipeline on image files (PNG, JPEG, WebP): one line per file'
complete -c posctl -n "__fish_posctl_using_subcommand code; and not __fish_seen_subcommand_from inspect scan-image help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c posctl -n "__fish_posctl_using_subcommand code; and __fish_seen_subcommand_from inspect" -l socket -d 'posd\'s control socket' -r -F
complete -c posctl -n "__fish_posctl_using_subcommand code; and __fish_seen_subcommand_from inspect" -l json -d 'One JSON document on stdout, failures included ({"ok":false,"code":...,"error":...})'
complete -c posctl -n "__fish_posctl_using_subcommand code; and __fish_seen_subcommand_from inspect" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c posctl -n "__fish_posctl_using_subcommand code; and __fish_seen_subcommand_from scan-image" -l socket -d 'posd\'s control socket' -r -F
complete -c posctl -n "__fish_posctl_using_subcommand code; and __fish_seen_subcommand_from scan-image" -l json -d 'One JSON document on stdout, failures included ({"ok":false,"code":...,"error":...})'
complete -c posctl -n "__fish_posctl_using_subcommand code; and __fish_seen_subcommand_from scan-image" -s h -l help -d 'Print help'
complete -c posctl -n "__fish_posctl_using_subcommand code; and __fish_seen_subcommand_from help" -f -a "inspect" -d 'Classify scanned text and print every parsed field; exit 4 with the reason if a sale would refuse it'
complete -c posctl -n "__fish_posctl_using_subcommand code; and __fish_seen_subcommand_from help" -f -a "scan-image" -d 'Run the camera\'s decode pipeline on image files (PNG, JPEG, WebP): one line per file'
complete -c posctl -n "__fish_posctl_using_subcommand code; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c posctl -n "__fish_posctl_using_subcommand devices" -l socket -d 'posd\'s control socket' -r -F
complete -c posctl -n "__fish_posctl_using_subcommand devices" -l json -d 'One JSON document on stdout, failures included ({"ok":false,"code":...,"error":...})'
complete -c posctl -n "__fish_posctl_using_subcommand devices" -s h -l help -d 'Print help'
complete -c posctl -n "__fish_posctl_using_subcommand fleet; and not __fish_seen_subcommand_from keygen push cmd status help" -l socket -d 'posd\'s control socket' -r -F
complete -c posctl -n "__fish_posctl_using_subcommand fleet; and not __fish_seen_subcommand_from keygen push cmd status help" -l json -d 'One JSON document on stdout, failures included ({"ok":false,"code":...,"error":...})'
complete -c posctl -n "__fish_posctl_using_subcommand fleet; and not __fish_seen_subcommand_from keygen push cmd status help" -s h -l help -d 'Print help'
complete -c posctl -n "__fish_posctl_using_subcommand fleet; and not __fish_seen_subcommand_from keygen push cmd status help" -f -a "keygen" -d 'A new Ed25519 fleet signing key: writes the key file (0600), prints the `[fleet]` line'
complete -c posctl -n "__fish_posctl_using_subcommand fleet; and not __fish_seen_subcommand_from keygen push cmd status help" -f -a "push" -d 'Sign a config overlay (TOML or .json, shaped like posd.toml) and publish it retained. It is first checked as the terminal would (the pushable list, the merged result under the terminal\'s schema): a push the terminal would reject is refused here, unsigned'
complete -c posctl -n "__fish_posctl_using_subcommand fleet; and not __fish_seen_subcommand_from keygen push cmd status help" -f -a "cmd" -d 'Send a signed command to one terminal and print its result'
complete -c posctl -n "__fish_posctl_using_subcommand fleet; and not __fish_seen_subcommand_from keygen push cmd status help" -f -a "status" -d 'Every terminal\'s retained status and config report, as a table; with --summary, the fleet at a glance (online and offline, the oldest unsynced queue, config versions, device faults), fast with tens of thousands of terminals'
complete -c posctl -n "__fish_posctl_using_subcommand fleet; and not __fish_seen_subcommand_from keygen push cmd status help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c posctl -n "__fish_posctl_using_subcommand fleet; and __fish_seen_subcommand_from keygen" -l id -d 'The key\'s name (the envelope\'s key_id)' -r
complete -c posctl -n "__fish_posctl_using_subcommand fleet; and __fish_seen_subcommand_from keygen" -l out -r -F
complete -c posctl -n "__fish_posctl_using_subcommand fleet; and __fish_seen_subcommand_from keygen" -l socket -d 'posd\'s control socket' -r -F
complete -c posctl -n "__fish_posctl_using_subcommand fleet; and __fish_seen_subcommand_from keygen" -l json -d 'One JSON document on stdout, failures included ({"ok":false,"code":...,"error":...})'
complete -c posctl -n "__fish_posctl_using_subcommand fleet; and __fish_seen_subcommand_from keygen" -s h -l help -d 'Print help'
complete -c posctl -n "__fish_posctl_using_subcommand fleet; and __fish_seen_subcommand_from push" -l key -r -F
complete -c posctl -n "__fish_posctl_using_subcommand fleet; and __fish_seen_subcommand_from push" -l terminal -d 'A terminal id, or * for every terminal' -r
complete -c posctl -n "__fish_posctl_using_subcommand fleet; and __fish_seen_subcommand_from push" -l version -d 'Higher than any version pushed to these terminals before' -r
complete -c posctl -n "__fish_posctl_using_subcommand fleet; and __fish_seen_subcommand_from push" -l base -d 'The terminal\'s posd.toml to check the push against (default: the shipped defaults with this terminal id)' -r -F
complete -c posctl -n "__fish_posctl_using_subcommand fleet; and __fish_seen_subcommand_from push" -l wait-s -d 'How long --wait waits' -r
complete -c posctl -n "__fish_posctl_using_subcommand fleet; and __fish_seen_subcommand_from push" -l broker -d 'Broker URL: mqtt://host:port, or mqtts://host:port with --tls-*' -r
complete -c posctl -n "__fish_posctl_using_subcommand fleet; and __fish_seen_subcommand_from push" -l prefix -r
complete -c posctl -n "__fish_posctl_using_subcommand fleet; and __fish_seen_subcommand_from push" -l client-id -d 'MQTT client id (default: posctl-fleet-<pid>)' -r
complete -c posctl -n "__fish_posctl_using_subcommand fleet; and __fish_seen_subcommand_from push" -l tls-ca -d 'CA certificate (PEM) for mqtts://' -r -F
complete -c posctl -n "__fish_posctl_using_subcommand fleet; and __fish_seen_subcommand_from push" -l tls-cert -d 'Client certificate (PEM, X.509 v3)' -r -F
complete -c posctl -n "__fish_posctl_using_subcommand fleet; and __fish_seen_subcommand_from push" -l tls-key -r -F
complete -c posctl -n "__fish_posctl_using_subcommand fleet; and __fish_seen_subcommand_from push" -l socket -d 'posd\'s control socket' -r -F
complete -c posctl -n "__fish_posctl_using_subcommand fleet; and __fish_seen_subcommand_from push" -l wait -d 'Wait for the terminal\'s verdict (cfg/reported): exit 0 applied, 4 rejected'
complete -c posctl -n "__fish_posctl_using_subcommand fleet; and __fish_seen_subcommand_from push" -l json -d 'One JSON document on stdout, failures included ({"ok":false,"code":...,"error":...})'
complete -c posctl -n "__fish_posctl_using_subcommand fleet; and __fish_seen_subcommand_from push" -s h -l help -d 'Print help'
complete -c posctl -n "__fish_posctl_using_subcommand fleet; and __fish_seen_subcommand_from cmd" -l key -r -F
complete -c posctl -n "__fish_posctl_using_subcommand fleet; and __fish_seen_subcommand_from cmd" -l terminal -r
complete -c posctl -n "__fish_posctl_using_subcommand fleet; and __fish_seen_subcommand_from cmd" -l args -d 'Arguments as a JSON object, e.g. \'{"txn_id":"..."}\'' -r
complete -c posctl -n "__fish_posctl_using_subcommand fleet; and __fish_seen_subcommand_from cmd" -l cmd-id -d 'Default: a new UUID. Repeating one returns the recorded result' -r
complete -c posctl -n "__fish_posctl_using_subcommand fleet; and __fish_seen_subcommand_from cmd" -l wait-s -r
complete -c posctl -n "__fish_posctl_using_subcommand fleet; and __fish_seen_subcommand_from cmd" -l broker -d 'Broker URL: mqtt://host:port, or mqtts://host:port with --tls-*' -r
complete -c posctl -n "__fish_posctl_using_subcommand fleet; and __fish_seen_subcommand_from cmd" -l prefix -r
complete -c posctl -n "__fish_posctl_using_subcommand fleet; and __fish_seen_subcommand_from cmd" -l client-id -d 'MQTT client id (default: posctl-fleet-<pid>)' -r
complete -c posctl -n "__fish_posctl_using_subcommand fleet; and __fish_seen_subcommand_from cmd" -l tls-ca -d 'CA certificate (PEM) for mqtts://' -r -F
complete -c posctl -n "__fish_posctl_using_subcommand fleet; and __fish_seen_subcommand_from cmd" -l tls-cert -d 'Client certificate (PEM, X.509 v3)' -r -F
complete -c posctl -n "__fish_posctl_using_subcommand fleet; and __fish_seen_subcommand_from cmd" -l tls-key -r -F
complete -c posctl -n "__fish_posctl_using_subcommand fleet; and __fish_seen_subcommand_from cmd" -l socket -d 'posd\'s control socket' -r -F
complete -c posctl -n "__fish_posctl_using_subcommand fleet; and __fish_seen_subcommand_from cmd" -l json -d 'One JSON document on stdout, failures included ({"ok":false,"code":...,"error":...})'
complete -c posctl -n "__fish_posctl_using_subcommand fleet; and __fish_seen_subcommand_from cmd" -s h -l help -d 'Print help'
complete -c posctl -n "__fish_posctl_using_subcommand fleet; and __fish_seen_subcommand_from status" -l wait-ms -d 'How long to collect retained messages (with --summary: at most; default 1000 for the table, 60000 for the summary)' -r
complete -c posctl -n "__fish_posctl_using_subcommand fleet; and __fish_seen_subcommand_from status" -l quiet-ms -d 'With --summary: the collection ends when the broker sent nothing this long' -r
complete -c posctl -n "__fish_posctl_using_subcommand fleet; and __fish_seen_subcommand_from status" -l broker -d 'Broker URL: mqtt://host:port, or mqtts://host:port with --tls-*' -r
complete -c posctl -n "__fish_posctl_using_subcommand fleet; and __fish_seen_subcommand_from status" -l prefix -r
complete -c posctl -n "__fish_posctl_using_subcommand fleet; and __fish_seen_subcommand_from status" -l client-id -d 'MQTT client id (default: posctl-fleet-<pid>)' -r
complete -c posctl -n "__fish_posctl_using_subcommand fleet; and __fish_seen_subcommand_from status" -l tls-ca -d 'CA certificate (PEM) for mqtts://' -r -F
complete -c posctl -n "__fish_posctl_using_subcommand fleet; and __fish_seen_subcommand_from status" -l tls-cert -d 'Client certificate (PEM, X.509 v3)' -r -F
complete -c posctl -n "__fish_posctl_using_subcommand fleet; and __fish_seen_subcommand_from status" -l tls-key -r -F
complete -c posctl -n "__fish_posctl_using_subcommand fleet; and __fish_seen_subcommand_from status" -l socket -d 'posd\'s control socket' -r -F
complete -c posctl -n "__fish_posctl_using_subcommand fleet; and __fish_seen_subcommand_from status" -l summary -d 'Counts instead of a row per terminal'
complete -c posctl -n "__fish_posctl_using_subcommand fleet; and __fish_seen_subcommand_from status" -l json -d 'One JSON document on stdout, failures included ({"ok":false,"code":...,"error":...})'
complete -c posctl -n "__fish_posctl_using_subcommand fleet; and __fish_seen_subcommand_from status" -s h -l help -d 'Print help'
complete -c posctl -n "__fish_posctl_using_subcommand fleet; and __fish_seen_subcommand_from help" -f -a "keygen" -d 'A new Ed25519 fleet signing key: writes the key file (0600), prints the `[fleet]` line'
complete -c posctl -n "__fish_posctl_using_subcommand fleet; and __fish_seen_subcommand_from help" -f -a "push" -d 'Sign a config overlay (TOML or .json, shaped like posd.toml) and publish it retained. It is first checked as the terminal would (the pushable list, the merged result under the terminal\'s schema): a push the terminal would reject is refused here, unsigned'
complete -c posctl -n "__fish_posctl_using_subcommand fleet; and __fish_seen_subcommand_from help" -f -a "cmd" -d 'Send a signed command to one terminal and print its result'
complete -c posctl -n "__fish_posctl_using_subcommand fleet; and __fish_seen_subcommand_from help" -f -a "status" -d 'Every terminal\'s retained status and config report, as a table; with --summary, the fleet at a glance (online and offline, the oldest unsynced queue, config versions, device faults), fast with tens of thousands of terminals'
complete -c posctl -n "__fish_posctl_using_subcommand fleet; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c posctl -n "__fish_posctl_using_subcommand completions" -l socket -d 'posd\'s control socket' -r -F
complete -c posctl -n "__fish_posctl_using_subcommand completions" -l json -d 'One JSON document on stdout, failures included ({"ok":false,"code":...,"error":...})'
complete -c posctl -n "__fish_posctl_using_subcommand completions" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c posctl -n "__fish_posctl_using_subcommand help; and not __fish_seen_subcommand_from status queue txn sale refund void batch-close batches current cancel scan reprint receipt print-jobs manager code devices fleet completions help" -f -a "status" -d 'The terminal\'s status'
complete -c posctl -n "__fish_posctl_using_subcommand help; and not __fish_seen_subcommand_from status queue txn sale refund void batch-close batches current cancel scan reprint receipt print-jobs manager code devices fleet completions help" -f -a "queue" -d 'Events waiting for the host\'s acknowledgement'
complete -c posctl -n "__fish_posctl_using_subcommand help; and not __fish_seen_subcommand_from status queue txn sale refund void batch-close batches current cancel scan reprint receipt print-jobs manager code devices fleet completions help" -f -a "txn" -d 'Transactions in the journal'
complete -c posctl -n "__fish_posctl_using_subcommand help; and not __fish_seen_subcommand_from status queue txn sale refund void batch-close batches current cancel scan reprint receipt print-jobs manager code devices fleet completions help" -f -a "sale" -d 'Start a sale and wait for its end. Without --code, any scanner, the camera or the keypad completes it'
complete -c posctl -n "__fish_posctl_using_subcommand help; and not __fish_seen_subcommand_from status queue txn sale refund void batch-close batches current cancel scan reprint receipt print-jobs manager code devices fleet completions help" -f -a "refund" -d 'Refund all or part of a sale (online only; needs the manager PIN)'
complete -c posctl -n "__fish_posctl_using_subcommand help; and not __fish_seen_subcommand_from status queue txn sale refund void batch-close batches current cancel scan reprint receipt print-jobs manager code devices fleet completions help" -f -a "void" -d 'Void an offline sale not yet settled (needs the manager PIN)'
complete -c posctl -n "__fish_posctl_using_subcommand help; and not __fish_seen_subcommand_from status queue txn sale refund void batch-close batches current cancel scan reprint receipt print-jobs manager code devices fleet completions help" -f -a "batch-close" -d 'Close the batch: Z report printed and sent to the host for reconciliation'
complete -c posctl -n "__fish_posctl_using_subcommand help; and not __fish_seen_subcommand_from status queue txn sale refund void batch-close batches current cancel scan reprint receipt print-jobs manager code devices fleet completions help" -f -a "batches" -d 'Batch closes and the host\'s reconciliation, newest first'
complete -c posctl -n "__fish_posctl_using_subcommand help; and not __fish_seen_subcommand_from status queue txn sale refund void batch-close batches current cancel scan reprint receipt print-jobs manager code devices fleet completions help" -f -a "current" -d 'The sale in progress and the merchant QR it shows'
complete -c posctl -n "__fish_posctl_using_subcommand help; and not __fish_seen_subcommand_from status queue txn sale refund void batch-close batches current cancel scan reprint receipt print-jobs manager code devices fleet completions help" -f -a "cancel" -d 'Cancel the sale in progress (an online payment in progress is reversed)'
complete -c posctl -n "__fish_posctl_using_subcommand help; and not __fish_seen_subcommand_from status queue txn sale refund void batch-close batches current cancel scan reprint receipt print-jobs manager code devices fleet completions help" -f -a "scan" -d 'Pass a code to the sale (or refund) waiting for one, as if scanned; refused when nothing waits'
complete -c posctl -n "__fish_posctl_using_subcommand help; and not __fish_seen_subcommand_from status queue txn sale refund void batch-close batches current cancel scan reprint receipt print-jobs manager code devices fleet completions help" -f -a "reprint" -d 'Print a receipt, pay slip or Z report again, marked REPRINT (default: the last transaction\'s receipt). Any final state: settled, voided, refunded, declined, ...'
complete -c posctl -n "__fish_posctl_using_subcommand help; and not __fish_seen_subcommand_from status queue txn sale refund void batch-close batches current cancel scan reprint receipt print-jobs manager code devices fleet completions help" -f -a "receipt" -d 'Receipts: draw one as posd would print it, without a printer'
complete -c posctl -n "__fish_posctl_using_subcommand help; and not __fish_seen_subcommand_from status queue txn sale refund void batch-close batches current cancel scan reprint receipt print-jobs manager code devices fleet completions help" -f -a "print-jobs" -d 'The durable print queue'
complete -c posctl -n "__fish_posctl_using_subcommand help; and not __fish_seen_subcommand_from status queue txn sale refund void batch-close batches current cancel scan reprint receipt print-jobs manager code devices fleet completions help" -f -a "manager" -d 'Manager PIN: make the hash for `[manager] pin_hash`'
complete -c posctl -n "__fish_posctl_using_subcommand help; and not __fish_seen_subcommand_from status queue txn sale refund void batch-close batches current cancel scan reprint receipt print-jobs manager code devices fleet completions help" -f -a "code" -d 'Payment codes: decode images, inspect scanned text'
complete -c posctl -n "__fish_posctl_using_subcommand help; and not __fish_seen_subcommand_from status queue txn sale refund void batch-close batches current cancel scan reprint receipt print-jobs manager code devices fleet completions help" -f -a "devices" -d 'Devices on this box: kind, VID:PID, by-id path, and the role and state posd gives them'
complete -c posctl -n "__fish_posctl_using_subcommand help; and not __fish_seen_subcommand_from status queue txn sale refund void batch-close batches current cancel scan reprint receipt print-jobs manager code devices fleet completions help" -f -a "fleet" -d 'Fleet management: signing keys, signed config pushes and commands, fleet status'
complete -c posctl -n "__fish_posctl_using_subcommand help; and not __fish_seen_subcommand_from status queue txn sale refund void batch-close batches current cancel scan reprint receipt print-jobs manager code devices fleet completions help" -f -a "completions" -d 'Print the shell completion script for posctl'
complete -c posctl -n "__fish_posctl_using_subcommand help; and not __fish_seen_subcommand_from status queue txn sale refund void batch-close batches current cancel scan reprint receipt print-jobs manager code devices fleet completions help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c posctl -n "__fish_posctl_using_subcommand help; and __fish_seen_subcommand_from txn" -f -a "list" -d 'Transactions, newest first: a table for people'
complete -c posctl -n "__fish_posctl_using_subcommand help; and __fish_seen_subcommand_from txn" -f -a "show" -d 'One transaction and its history: by its id, the receipt\'s 12-digit reference or the text of the receipt\'s QR'
complete -c posctl -n "__fish_posctl_using_subcommand help; and __fish_seen_subcommand_from receipt" -f -a "render" -d 'Interpret the ESC/POS bytes posd would send and draw them: --png FILE and/or --text'
complete -c posctl -n "__fish_posctl_using_subcommand help; and __fish_seen_subcommand_from manager" -f -a "hash-pin" -d 'Prints the argon2id hash of a PIN read from stdin (one line), for `[manager] pin_hash`'
complete -c posctl -n "__fish_posctl_using_subcommand help; and __fish_seen_subcommand_from code" -f -a "inspect" -d 'Classify scanned text and print every parsed field; exit 4 with the reason if a sale would refuse it'
complete -c posctl -n "__fish_posctl_using_subcommand help; and __fish_seen_subcommand_from code" -f -a "scan-image" -d 'Run the camera\'s decode pipeline on image files (PNG, JPEG, WebP): one line per file'
complete -c posctl -n "__fish_posctl_using_subcommand help; and __fish_seen_subcommand_from fleet" -f -a "keygen" -d 'A new Ed25519 fleet signing key: writes the key file (0600), prints the `[fleet]` line'
complete -c posctl -n "__fish_posctl_using_subcommand help; and __fish_seen_subcommand_from fleet" -f -a "push" -d 'Sign a config overlay (TOML or .json, shaped like posd.toml) and publish it retained. It is first checked as the terminal would (the pushable list, the merged result under the terminal\'s schema): a push the terminal would reject is refused here, unsigned'
complete -c posctl -n "__fish_posctl_using_subcommand help; and __fish_seen_subcommand_from fleet" -f -a "cmd" -d 'Send a signed command to one terminal and print its result'
complete -c posctl -n "__fish_posctl_using_subcommand help; and __fish_seen_subcommand_from fleet" -f -a "status" -d 'Every terminal\'s retained status and config report, as a table; with --summary, the fleet at a glance (online and offline, the oldest unsynced queue, config versions, device faults), fast with tens of thousands of terminals'
