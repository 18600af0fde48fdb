function __semples_should_offer_completions_for_flags_or_options -a expected_commands
    set -l non_repeating_flags_or_options $argv[2..]
    set -l non_repeating_flags_or_options_absent 0
    set -l positional_index 0
    set -l commands
    __semples_parse_tokens
    test "$commands" = "$expected_commands"; and return $non_repeating_flags_or_options_absent
end

function __semples_should_offer_completions_for_positional -a expected_commands positional_index_comparison expected_positional_index
    set -l non_repeating_flags_or_options
    set -l non_repeating_flags_or_options_absent 0
    set -l positional_index 0
    set -l commands
    __semples_parse_tokens
    test "$commands" = "$expected_commands" -a \( "$positional_index" "$positional_index_comparison" "$expected_positional_index" \)
end

function __semples_parse_tokens -S
    set -l unparsed_tokens (__semples_tokens -pc)
    switch $unparsed_tokens[1]
    case 'semples'
        __semples_parse_subcommand 0 'h/help'
        switch $unparsed_tokens[1]
        case 'run'
            __semples_parse_subcommand 1 'out=' 'threads=' 'log-file=' 'quiet' 'shard=' 'merge-shards' 'h/help'
        case 'bench'
            __semples_parse_subcommand 0 'threads=' 'iterations=' 'rounds=' 'only=' 'cam-images=' 'python=' 'no-torch' 'json' 'scaling' 'blas=' 'h/help'
        case 'make-dataset'
            __semples_parse_subcommand 1 'out=' 'train=' 'eval=' 'validation=' 'clip=' 'seed=' 'h/help'
        case 'summary'
            __semples_parse_subcommand -r 1 'json' 'h/help'
        case 'clip'
            __semples_parse_subcommand 0 'h/help'
            switch $unparsed_tokens[1]
            case 'tokenize'
                __semples_parse_subcommand -r 1 'vocab=' 'short' 'json' 'h/help'
            case 'score'
                __semples_parse_subcommand 0 'weights=' 'image=+' 'text=+' 'normalisation=' 'vocab=' 'json' 'h/help'
            case 'bench'
                __semples_parse_subcommand 0 'batch=' 'prompts=' 'runs=' 'threads=' 'python=' 'no-torch' 'json' 'h/help'
            end
        case 'submit'
            __semples_parse_subcommand -r 1 'spool=' 'config=' 'json' 'wait=' 'name=' 'no-validate' 'h/help'
        case 'status'
            __semples_parse_subcommand 0 'spool=' 'config=' 'json' 'all' 'recent=' 'h/help'
        case 'show'
            __semples_parse_subcommand 1 'spool=' 'config=' 'json' 'h/help'
        case 'logs'
            __semples_parse_subcommand 1 'spool=' 'config=' 'json' 'f/follow' 'all' 'h/help'
        case 'cancel'
            __semples_parse_subcommand 1 'spool=' 'config=' 'json' 'timeout=' 'h/help'
        case 'hold'
            __semples_parse_subcommand 1 'spool=' 'config=' 'json' 'timeout=' 'h/help'
        case 'release'
            __semples_parse_subcommand 1 'spool=' 'config=' 'json' 'timeout=' 'h/help'
        case 'retry'
            __semples_parse_subcommand 1 'spool=' 'config=' 'json' 'timeout=' 'h/help'
        case 'validate'
            __semples_parse_subcommand -r 1 'spool=' 'config=' 'json' 'h/help'
        case 'help'
            __semples_parse_subcommand -r 1 
        end
    end
end

function __semples_tokens
    if test (string split -m 1 -f 1 -- . "$FISH_VERSION") -gt 3
        commandline --tokens-raw $argv
    else
        commandline -o $argv
    end
end

function __semples_parse_subcommand -S -a positional_count
    argparse -s r -- $argv
    set -l option_specs $argv[2..]
    set -l is_repeating_positional $_flag_r
    set -el _flag_r
    set -a commands $unparsed_tokens[1]
    set positional_index 0
    while true
        set -e unparsed_tokens[1]
        argparse -sn "$commands" $option_specs -- $unparsed_tokens 2> /dev/null
        set unparsed_tokens $argv
        set positional_index (math $positional_index + 1)
        for non_repeating_flag_or_option in $non_repeating_flags_or_options
            if set -ql "_flag_$(string replace -a - _ -- $non_repeating_flag_or_option)"
                set non_repeating_flags_or_options_absent 1
                break
            end
        end
        test (count $unparsed_tokens) -eq 0 -o \( -z "$is_repeating_positional" -a "$positional_index" -gt "$positional_count" \) && break
    end
end

function __semples_complete_directories
    set -l token (commandline -t)
    string match -- '*/' $token
    set -l subdirs $token*/
    printf %s\n $subdirs
end

function __semples_custom_completion
    set -x SAP_SHELL fish
    set -x SAP_SHELL_VERSION $FISH_VERSION
    set -l tokens (__semples_tokens -p)
    if test -z "$(__semples_tokens -t)"
        set -l index (count (__semples_tokens -pc))
        set tokens $tokens[..$index] \'\' $tokens[(math $index + 1)..]
    end
    command $tokens[1] $argv $tokens
end

complete -c 'semples' -f
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'semples' -n '__semples_should_offer_completions_for_positional "semples" -eq 1' -fa 'run' -d 'Run a job manifest in the foreground.'
complete -c 'semples' -n '__semples_should_offer_completions_for_positional "semples" -eq 1' -fa 'bench' -d 'Measure semples against PyTorch on this machine, in one run.'
complete -c 'semples' -n '__semples_should_offer_completions_for_positional "semples" -eq 1' -fa 'make-dataset' -d 'Write a dataset in the VOC12 layout.'
complete -c 'semples' -n '__semples_should_offer_completions_for_positional "semples" -eq 1' -fa 'summary' -d 'Summarise finished job folders: state, metrics, baselines, plots.'
complete -c 'semples' -n '__semples_should_offer_completions_for_positional "semples" -eq 1' -fa 'clip' -d 'Tokenise prompts and score images against texts with CLIP.'
complete -c 'semples' -n '__semples_should_offer_completions_for_positional "semples" -eq 1' -fa 'submit' -d 'Queue job manifests for the daemon.'
complete -c 'semples' -n '__semples_should_offer_completions_for_positional "semples" -eq 1' -fa 'status' -d 'Show the daemon and the jobs, with why each waits.'
complete -c 'semples' -n '__semples_should_offer_completions_for_positional "semples" -eq 1' -fa 'show' -d 'Show one job and its history.'
complete -c 'semples' -n '__semples_should_offer_completions_for_positional "semples" -eq 1' -fa 'logs' -d 'Print a job\'s log (one per attempt).'
complete -c 'semples' -n '__semples_should_offer_completions_for_positional "semples" -eq 1' -fa 'cancel' -d 'Cancel a queued or running job.'
complete -c 'semples' -n '__semples_should_offer_completions_for_positional "semples" -eq 1' -fa 'hold' -d 'Keep a queued job from starting.'
complete -c 'semples' -n '__semples_should_offer_completions_for_positional "semples" -eq 1' -fa 'release' -d 'Let a held job run.'
complete -c 'semples' -n '__semples_should_offer_completions_for_positional "semples" -eq 1' -fa 'retry' -d 'Run a failed or cancelled job again, or a waiting retry now.'
complete -c 'semples' -n '__semples_should_offer_completions_for_positional "semples" -eq 1' -fa 'validate' -d 'Check manifests without submitting them.'
complete -c 'semples' -n '__semples_should_offer_completions_for_positional "semples" -eq 1' -fa 'help' -d 'Show subcommand help information.'
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples run" out' -l 'out' -d 'Output folder (created if missing).' -rfka ''
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples run" threads' -l 'threads' -d 'Engine threads (default: all cores, or $SEMPLES_THREADS).' -rfka ''
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples run" log-file' -l 'log-file' -d 'Log file; \'-\' for none (default: OUT/log.txt).' -rfka ''
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples run" quiet' -l 'quiet' -d 'Do not echo log lines and progress to the terminal.'
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples run" shard' -l 'shard' -d 'Run only shard K of a manifest with \'shards: N\' (K/N, 0 ≤ K < N).' -rfka ''
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples run" merge-shards' -l 'merge-shards' -d 'Check the finished shards of a sharded \'cam\' job and write result.json.'
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples run" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples bench" threads' -l 'threads' -d 'Threads for both engines (default: all cores).' -rfka ''
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples bench" iterations' -l 'iterations' -d 'Timed iterations per figure.' -rfka ''
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples bench" rounds' -l 'rounds' -d 'Alternating semples/PyTorch rounds of the engine figures.' -rfka ''
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples bench" only' -l 'only' -d 'Sections to run, comma-separated: engine, cam, clip, formats, train, semples, gemm (default: all but gemm).' -rfka ''
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples bench" cam-images' -l 'cam-images' -d 'Images timed in the cam section.' -rfka ''
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples bench" python' -l 'python' -d 'Python with torch for the PyTorch side.' -rfka ''
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples bench" no-torch' -l 'no-torch' -d 'Skip PyTorch even when available.'
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples bench" json' -l 'json' -d 'Print JSON instead of a table.'
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples bench" scaling' -l 'scaling' -d 'Only the training step\'s throughput at 1, 2, … threads up to --threads, with the parallel efficiency.'
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples bench" blas' -l 'blas' -d 'GEMM backend for semples: openblas or onednn (default: $SEMPLES_BLAS, else openblas).' -rfka ''
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples bench" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples make-dataset" out' -l 'out' -d 'Folder to write (data_path of the manifests).' -rfka ''
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples make-dataset" train' -l 'train' -d 'Training images.' -rfka ''
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples make-dataset" eval' -l 'eval' -d 'Evaluation images.' -rfka ''
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples make-dataset" validation' -l 'validation' -d 'Validation images (train_id.txt); 0: train_id.txt is the evaluation list.' -rfka ''
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples make-dataset" clip' -l 'clip' -d 'Captioned images for CLIP training (clip_train_id.txt, clip_val_id.txt).' -rfka ''
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples make-dataset" seed' -l 'seed' -d 'Random seed.' -rfka ''
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples make-dataset" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples summary" json' -l 'json' -d 'Print JSON: state, metrics and, for a pipeline with a report, miou and cooccurrence (percent).'
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples summary" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples clip" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'semples' -n '__semples_should_offer_completions_for_positional "semples clip" -eq 1' -fa 'tokenize' -d 'Print the 77 CLIP token ids of each text, one line per text.'
complete -c 'semples' -n '__semples_should_offer_completions_for_positional "semples clip" -eq 1' -fa 'score' -d 'Cosine similarity of every image with every text.'
complete -c 'semples' -n '__semples_should_offer_completions_for_positional "semples clip" -eq 1' -fa 'bench' -d 'Time CLIP ViT-B/32 (random weights) against PyTorch: image forward, forward + pixel gradient, class prompts.'
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples clip tokenize" vocab' -l 'vocab' -d 'Path of bpe_simple_vocab_16e6.txt.gz (or its folder). Default: $SEMPLES_CLIP_VOCAB, then the weights\' folder.' -rfka ''
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples clip tokenize" short' -l 'short' -d 'Print only the ids up to and including the end-of-text token.'
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples clip tokenize" json' -l 'json' -d 'Print a JSON array of id arrays.'
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples clip tokenize" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples clip score" weights' -l 'weights' -d 'CLIP weight file.' -rfka ''
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples clip score"' -l 'image' -d 'An image (JPEG or PNG); repeat for more.' -rfka ''
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples clip score"' -l 'text' -d 'A text; repeat for more.' -rfka ''
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples clip score" normalisation' -l 'normalisation' -d 'Pixel statistics: clip or imagenet.' -rfka ''
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples clip score" vocab' -l 'vocab' -d 'Path of bpe_simple_vocab_16e6.txt.gz (or its folder). Default: $SEMPLES_CLIP_VOCAB, then the weights\' folder.' -rfka ''
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples clip score" json' -l 'json' -d 'Print JSON: {images, texts, similarity: [[image × text]]}.'
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples clip score" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples clip bench" batch' -l 'batch' -d 'Images per batch.' -rfka ''
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples clip bench" prompts' -l 'prompts' -d 'Class prompts through the text encoder.' -rfka ''
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples clip bench" runs' -l 'runs' -d 'Timed runs (median reported).' -rfka ''
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples clip bench" threads' -l 'threads' -d 'Threads for both sides (default: all cores).' -rfka ''
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples clip bench" python' -l 'python' -d 'Python with torch for the PyTorch side.' -rfka ''
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples clip bench" no-torch' -l 'no-torch' -d 'Skip PyTorch.'
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples clip bench" json' -l 'json' -d 'Print JSON.'
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples clip bench" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples submit" spool' -l 'spool' -d 'The spool folder (default: $SEMPLES_SPOOL, else the daemon\'s configuration).' -rfka ''
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples submit" config' -l 'config' -d 'The daemon\'s configuration file, used to find the spool.' -rfka ''
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples submit" json' -l 'json' -d 'Print JSON instead of text.'
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples submit" wait' -l 'wait' -d 'Seconds to wait for the daemon to accept each manifest (0: do not wait).' -rfka ''
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples submit" name' -l 'name' -d 'Submit under this file name instead of the manifest\'s own (one manifest only).' -rfka ''
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples submit" no-validate' -l 'no-validate' -d 'Skip the local check (the daemon still checks).'
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples submit" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples status" spool' -l 'spool' -d 'The spool folder (default: $SEMPLES_SPOOL, else the daemon\'s configuration).' -rfka ''
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples status" config' -l 'config' -d 'The daemon\'s configuration file, used to find the spool.' -rfka ''
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples status" json' -l 'json' -d 'Print JSON instead of text.'
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples status" all' -l 'all' -d 'List every finished job too.'
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples status" recent' -l 'recent' -d 'Finished jobs to list without --all.' -rfka ''
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples status" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples show" spool' -l 'spool' -d 'The spool folder (default: $SEMPLES_SPOOL, else the daemon\'s configuration).' -rfka ''
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples show" config' -l 'config' -d 'The daemon\'s configuration file, used to find the spool.' -rfka ''
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples show" json' -l 'json' -d 'Print JSON instead of text.'
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples show" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples logs" spool' -l 'spool' -d 'The spool folder (default: $SEMPLES_SPOOL, else the daemon\'s configuration).' -rfka ''
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples logs" config' -l 'config' -d 'The daemon\'s configuration file, used to find the spool.' -rfka ''
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples logs" json' -l 'json' -d 'Print JSON instead of text.'
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples logs" f follow' -l 'follow' -s 'f' -d 'Follow the log until the job finishes.'
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples logs" all' -l 'all' -d 'Every attempt\'s log, not only the latest.'
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples logs" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples cancel" spool' -l 'spool' -d 'The spool folder (default: $SEMPLES_SPOOL, else the daemon\'s configuration).' -rfka ''
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples cancel" config' -l 'config' -d 'The daemon\'s configuration file, used to find the spool.' -rfka ''
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples cancel" json' -l 'json' -d 'Print JSON instead of text.'
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples cancel" timeout' -l 'timeout' -d 'Seconds to wait for the daemon\'s answer.' -rfka ''
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples cancel" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples hold" spool' -l 'spool' -d 'The spool folder (default: $SEMPLES_SPOOL, else the daemon\'s configuration).' -rfka ''
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples hold" config' -l 'config' -d 'The daemon\'s configuration file, used to find the spool.' -rfka ''
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples hold" json' -l 'json' -d 'Print JSON instead of text.'
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples hold" timeout' -l 'timeout' -d 'Seconds to wait for the daemon\'s answer.' -rfka ''
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples hold" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples release" spool' -l 'spool' -d 'The spool folder (default: $SEMPLES_SPOOL, else the daemon\'s configuration).' -rfka ''
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples release" config' -l 'config' -d 'The daemon\'s configuration file, used to find the spool.' -rfka ''
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples release" json' -l 'json' -d 'Print JSON instead of text.'
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples release" timeout' -l 'timeout' -d 'Seconds to wait for the daemon\'s answer.' -rfka ''
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples release" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples retry" spool' -l 'spool' -d 'The spool folder (default: $SEMPLES_SPOOL, else the daemon\'s configuration).' -rfka ''
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples retry" config' -l 'config' -d 'The daemon\'s configuration file, used to find the spool.' -rfka ''
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples retry" json' -l 'json' -d 'Print JSON instead of text.'
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples retry" timeout' -l 'timeout' -d 'Seconds to wait for the daemon\'s answer.' -rfka ''
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples retry" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples validate" spool' -l 'spool' -d 'The spool folder (default: $SEMPLES_SPOOL, else the daemon\'s configuration).' -rfka ''
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples validate" config' -l 'config' -d 'The daemon\'s configuration file, used to find the spool.' -rfka ''
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples validate" json' -l 'json' -d 'Print JSON instead of text.'
complete -c 'semples' -n '__semples_should_offer_completions_for_flags_or_options "semples validate" h help' -s 'h' -l 'help' -d 'Show help information.'
