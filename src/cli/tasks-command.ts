import type { Command } from 'commander';

/**
 * `ferry tasks …`: the declarations only (commander); the client code loads when a subcommand
 * runs (./tasks.ts).
 */
export function addTasksCommand(program: Command): void {
  const tasks = program
    .command('tasks')
    .description('the tasks of a running Ferry service: list, show, stats, logs, create, stop, restart, delete, verify')
    .option('--endpoint <url>', 'the service (or FERRY_ENDPOINT, or the profile\'s endpoint)', undefined)
    .option('--profile <name>', 'the profile in the credentials file (or FERRY_PROFILE)', undefined)
    .option('--credentials-file <file>', 'profile file, mode 0600 (or FERRY_CREDENTIALS_FILE; default ~/.config/ferry/credentials)')
    .option('--ak <ak>', 'access key (or FERRY_AK)')
    .option('--sk <sk>', 'secret key (or FERRY_SK; on the command line it is visible in ps)')
    .option('--project-id <id>', 'project id (or FERRY_PROJECT_ID)')
    .option('--token <token>', 'X-Auth-Token instead of AK/SK (or FERRY_TOKEN)')
    .option('--json', 'JSON on stdout instead of tables')
    .addHelpText(
      'after',
      '\nExit codes: 0 done; 1 the service refused (a DCS error, or some tasks of a batch); 2 usage or credentials missing;\n' +
        '3 verify found differences (or the verification failed); 4 the service cannot be reached; 5 authentication refused.',
    );

  const run = (name: string) => async (...args: unknown[]) => {
    const cmd = args[args.length - 1] as Command;
    const { runTasksCommand } = await import('./tasks.js');
    process.exitCode = await runTasksCommand(name, cmd.args, { ...tasks.opts(), ...cmd.opts() });
  };

  tasks.command('list').description('the tasks, newest first').option('--name <text>', 'only names containing this').option('--limit <n>', 'at most this many', '50').option('--offset <n>', 'skip this many', '0').action(run('list'));
  tasks.command('show').description('one task').argument('<task-id>').action(run('show'));
  tasks.command('stats').description('progress of a task: phase, snapshot, lag, rates, counters').argument('<task-id>').action(run('stats'));
  tasks
    .command('logs')
    .description("a task's log, oldest first")
    .argument('<task-id>')
    .option('--level <level>', 'INFO, WARN or ERROR only')
    .option('--limit <n>', 'at most this many', '100')
    .option('--offset <n>', 'skip this many', '0')
    .action(run('logs'));
  tasks
    .command('create')
    .description('create an online migration task and start it (CreateOnlineMigrationTask + SetOnlineMigrationTask)')
    .requiredOption('--name <name>', 'task name')
    .option('--description <text>', 'description')
    .option('--source <addrs>', 'source host:port[,host:port...] or sentinel://...')
    .option('--source-id <id>', 'or a registered source instance')
    .option('--target <addrs>', 'target host:port[,host:port...]')
    .option('--target-id <id>', 'or a registered target instance')
    .option('--source-password-file <file>', 'source password from a file (or FERRY_SOURCE_PASSWORD)')
    .option('--source-password <password>', 'source password (visible in ps)')
    .option('--target-password-file <file>', 'target password from a file (or FERRY_TARGET_PASSWORD)')
    .option('--target-password <password>', 'target password (visible in ps)')
    .option('--source-tls', 'TLS to the source')
    .option('--target-tls', 'TLS to the target')
    .option('--method <method>', 'incremental | full', 'incremental')
    .option('--resume <mode>', 'auto | manual', 'auto')
    .option('--bandwidth <mb>', 'MB/s limit (1-10240)')
    .option('--source-mode <mode>', 'auto | psync | scan')
    .option('--target-conflict <policy>', 'fail | replace | purge-first')
    .option('--on-write-error <policy>', 'fail | skip')
    .option('--drop-flush', 'do not forward FLUSHALL / FLUSHDB')
    .option('--db-map <pairs>', 'send source db N to target db M: "N:M,N2:M2"')
    .option('--dbs <list>', 'migrate only these source dbs: "0,1,5"')
    .option('--db-prefix <pairs>', 'prefix the keys of source db N: "1=db1:"')
    .action(run('create'));
  tasks.command('stop').description('stop tasks').argument('<task-id...>').option('--wait', 'return once each is stopped').action(run('stop'));
  tasks.command('restart').description('restart failed or stopped online tasks').argument('<task-id...>').action(run('restart'));
  tasks.command('delete').description('delete tasks (a migrating one is stopped first)').argument('<task-id...>').option('--yes', 'really delete (required)').action(run('delete'));
  tasks
    .command('verify')
    .description("compare a task's source and target key by key (exit 0 equal, 3 differences)")
    .argument('<task-id>')
    .option('--rounds <n>', 're-check differing keys this many rounds', '1')
    .option('--no-wait', 'start it and return')
    .option('--timeout <seconds>', 'give up waiting after this long', '600')
    .action(run('verify'));
}
