// Hostward's shipped rules: public indicators of well-known malware families, web shells,
// miners and hacking tools, and the EICAR test file. Every rule carries `family` (what the
// alarm names) and `severity` (Critical, High, Medium, Low). They must stay silent on a clean
// Debian system (/usr/bin, /usr/lib): prefer several specific strings over one common one.
// Speed: the scanner runs each rule as a pass of its own (src/rules.rs): yara-x searches a
// set's atoms with SIMD up to 64 of them and byte by byte past that, and `nocase` strings and
// regex alternations count many; keep a rule under it (split it when `rule_cost` shows it
// slow). yara-x evaluates a condition before it searches, so cheap tests (filesize, the ELF
// magic) go first. A rule that cannot match an ELF file says `scope = "text"` and starts its
// condition with `uint32(0) != 0x464c457f` (or an anchored text pattern): the scanner does
// not run it on ELF files. Measure a rule with `cargo run --release -p hostward-scanner
// --example rule_cost -- content/yara/hostward.yar DIR`.

rule eicar_test_file {
  meta:
    scope = "text"
    family = "EICAR test file"
    severity = "Low"
    description = "The anti-malware test file: proves detection works, harms nothing"
  strings:
    $eicar = "X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
  condition:
    filesize <= 128 and $eicar at 0
}

rule webshell_php_request_exec {
  meta:
    scope = "text"
    family = "PHP web shell"
    severity = "Critical"
    description = "PHP code that runs what the request says"
  strings:
    $php = "<?"
    $exec = /(eval|assert|system|passthru|shell_exec|exec|popen|proc_open|pcntl_exec)\s*\(\s*(@\s*)?\$_(GET|POST|REQUEST|COOKIE|SERVER)\s*\[/ nocase
    $varfunc = /\$_(GET|POST|REQUEST|COOKIE)\s*\[[^\]]{1,40}\]\s*\(\s*\$_(GET|POST|REQUEST|COOKIE)/ nocase
    $create = /create_function\s*\(\s*['"]{2}\s*,\s*\$_(GET|POST|REQUEST)/ nocase
  condition:
    filesize < 2MB and uint32(0) != 0x464c457f and $php and any of ($exec, $varfunc, $create)
}

// The decoders are two rules, eval and assert: with one regex for both, the rule's atoms pass
// the 64 that yara-x searches for with SIMD, and it scans text ten times slower.
rule webshell_php_eval_decoded {
  meta:
    scope = "text"
    family = "PHP web shell"
    severity = "Critical"
    description = "PHP code that runs code it decodes first (base64, gzip, rot13)"
  strings:
    $php = "<?"
    $decode = /eval\s*\(\s*(@\s*)?(base64_decode|gzinflate|gzuncompress|str_rot13|gzdecode)\s*\(/ nocase
  condition:
    filesize < 2MB and uint32(0) != 0x464c457f and $php and $decode
}

rule webshell_php_assert_decoded {
  meta:
    scope = "text"
    family = "PHP web shell"
    severity = "Critical"
    description = "PHP code that runs code it decodes first through assert"
  strings:
    $php = "<?"
    $decode = /assert\s*\(\s*(@\s*)?(base64_decode|gzinflate|gzuncompress|str_rot13|gzdecode)\s*\(/ nocase
  condition:
    filesize < 2MB and uint32(0) != 0x464c457f and $php and $decode
}

rule webshell_jsp_runtime_exec {
  meta:
    scope = "text"
    family = "JSP web shell"
    severity = "Critical"
    description = "JSP code that runs a request parameter as a command"
  strings:
    $exec = /Runtime\.getRuntime\(\)\.exec\s*\(\s*request\.getParameter/ nocase
    $pb = /new\s+ProcessBuilder\s*\([^)]{0,40}request\.getParameter/ nocase
  condition:
    filesize < 2MB and uint32(0) != 0x464c457f and any of them
}

rule webshell_known_names {
  meta:
    scope = "text"
    family = "Known web shell"
    severity = "Critical"
    description = "Markers of widely published web shells (China Chopper, c99, r57, WSO, b374k)"
  strings:
    $chopper = /<%@\s*Page\s+Language\s*=\s*"Jscript"%><%eval\(Request\.Item\[/ nocase
    $c99 = "c99shell" nocase
    $r57 = "r57shell" nocase
    $wso = "WSO 2." ascii
    $wso2 = "wso_version" ascii
    $b374k = "b374k" nocase
  condition:
    filesize < 5MB and uint32(0) != 0x464c457f and any of them
}

rule miner_xmrig {
  meta:
    family = "XMRig miner"
    severity = "High"
    description = "The XMRig Monero miner or its configuration"
  strings:
    $name = "xmrig" nocase
    $stratum = "stratum+tcp://" ascii
    $stratum_ssl = "stratum+ssl://" ascii
    $donate = "donate-level" ascii
    $randomx = "randomx" nocase
    $pool = "pool_wallet" ascii
  condition:
    // The option every XMRig build and config has, not just the name and a pool URL (which
    // a detector of miners, such as Hostward's agent, carries too).
    $name and $donate and any of ($stratum, $stratum_ssl, $randomx, $pool)
}

rule miner_stratum_config {
  meta:
    scope = "text"
    family = "Cryptocurrency miner"
    severity = "High"
    description = "A miner configured with a pool and a wallet"
  strings:
    $tcp = "stratum+tcp://" ascii
    $ssl = "stratum+ssl://" ascii
    $tls = "stratum+tls://" ascii
    $user = /"user"\s*:\s*"[0-9a-zA-Z]{90,110}"/
    $o = /\s-o\s+stratum\+/ ascii
  condition:
    filesize < 1MB and uint32(0) != 0x464c457f and any of ($tcp, $ssl, $tls) and ($user or $o)
}

rule hacktool_mimikatz {
  meta:
    family = "Mimikatz"
    severity = "High"
    description = "The Mimikatz credential dumper"
  strings:
    $a = "sekurlsa::logonpasswords" nocase
    $b = "gentilkiwi" nocase
    $c = "mimikatz" nocase fullword
    $d = "lsadump::sam" nocase
  condition:
    2 of them
}

rule rootkit_diamorphine {
  meta:
    family = "Diamorphine rootkit"
    severity = "Critical"
    description = "The Diamorphine loadable kernel module rootkit"
  strings:
    $a = "diamorphine" ascii
    $b = "diamorphine_secret" ascii
    $c = "module_hide" ascii
    $d = "hacked_kill" ascii
  condition:
    uint32(0) == 0x464c457f and 2 of them
}

rule backdoor_reverse_shell_script {
  meta:
    scope = "text"
    family = "Reverse shell script"
    severity = "High"
    description = "A script that hands a shell to a remote address"
  strings:
    $bash = /(bash|sh)\s+-i\s+>&\s*\/dev\/tcp\/[0-9]{1,3}(\.[0-9]{1,3}){3}\/[0-9]{2,5}/
    $nc = /\bnc(at)?\s+(-[a-z]+\s+)*-e\s+\/bin\/(ba)?sh\s+[0-9]{1,3}(\.[0-9]{1,3}){3}/
    $py = /socket\.socket\(.{0,200}\.connect\(\(\s*["'][0-9]{1,3}(\.[0-9]{1,3}){3}["'].{0,200}(pty\.spawn|subprocess\.call\(\s*\[\s*["']\/bin\/(ba)?sh)/ 
  condition:
    filesize < 1MB and uint32(0) != 0x464c457f and any of them
}

rule clamav_test_file {
  meta:
    family = "ClamAV test file"
    severity = "Low"
    description = "ClamAV's harmless test program (clamav-testfiles): proves detection works"
  strings:
    $code = { BB 71 10 40 00 33 C0 50 50 8B F3 53 53 50 B0 29 40 30 04 66 AC 79 F9 BA 31 00 78 0D AD 50 FF 66 70 0E 1F BE 31 00 E9 E5 FF B4 09 CD 21 B4 4C CD 21 }
  condition:
    $code
}
