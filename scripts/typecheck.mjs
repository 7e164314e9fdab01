#!/usr/bin/env node
// @ts-check
// Types, tests included, in a few TypeScript programs instead of one per tsconfig.json.
//
// Every package's tsconfig.json resolves the workspace packages it imports to their sources
// (the "@context-gateway/source" condition), so `tsc -p` per package checked the shared libs
// again in each of ~30 programs: most of the gate's time. Here the projects whose compiler
// options are the same — the options each tsconfig.json gives, and the @types it would load
// on its own — are checked together in one program, each file once. A project whose options
// differ (test-e2e's allowJs, deploy/'s checkJs, a `types` list, @types of its own) gets a
// program of its own, so every file is still checked with its own project's options. The
// diagnostics are those `tsc -p <project> --noEmit` reports, in the same order of phases.
//
//   node scripts/typecheck.mjs                  every project (what `pnpm lint` checks)
//   node scripts/typecheck.mjs libs/crypto ...  only these (each group runs as one program)
//   node scripts/typecheck.mjs --groups         prints the groups as JSON, checks nothing
//
// One thing a shared program sees that a package's own does not: another package's global
// declarations and module augmentations (gateway's `declare module 'fastify'`). Sources are
// also compiled per package by the build (tsconfig.build.json), which would still fail there.
import { existsSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

import ts from 'typescript';

const root = fileURLToPath(new URL('..', import.meta.url));

/** Every folder with a tsconfig.json that type-checks a part of the tree (sources and their tests). */
export function typeProjects() {
  const projects = ['proto', 'test-e2e', 'deploy', 'docs', 'scripts/stack'];
  for (const group of ['libs', 'services', 'tools', 'sdk']) {
    for (const name of readdirSync(join(root, group)).sort()) projects.push(`${group}/${name}`);
  }
  return projects.filter((dir) => existsSync(join(root, dir, 'tsconfig.json')));
}

/** @param {string} dir */
function parseProject(dir) {
  /** @type {ts.Diagnostic[]} */
  const fatal = [];
  const parsed = ts.getParsedCommandLineOfConfigFile(
    join(root, dir, 'tsconfig.json'),
    {},
    { ...ts.sys, onUnRecoverableConfigFileDiagnostic: (diagnostic) => fatal.push(diagnostic) },
  );
  if (!parsed) throw new Error(`${dir}/tsconfig.json: ${fatal.map((d) => flatten(d.messageText)).join('; ')}`);
  return parsed;
}

/** @param {string | ts.DiagnosticMessageChain} text */
function flatten(text) {
  return ts.flattenDiagnosticMessageText(text, '\n');
}

/**
 * What decides how a project's files are checked: its compiler options, less those that only
 * say where output goes (with noEmit there is none), and the @types packages it loads by
 * itself (found from its own folder up).
 * @param {ts.ParsedCommandLine} parsed
 */
function checkingKey(parsed) {
  /** @type {Record<string, unknown>} */
  const options = { ...parsed.options };
  for (const where of ['configFilePath', 'rootDir', 'outDir', 'pathsBasePath']) delete options[where];
  const types = [...new Set(ts.getAutomaticTypeDirectiveNames(parsed.options, ts.sys))].sort();
  return JSON.stringify({ options, types });
}

/**
 * The projects grouped by checking key, largest group first.
 * @param {string[]} projects
 * @returns {string[][]}
 */
export function typeGroups(projects = typeProjects()) {
  /** @type {Map<string, string[]>} */
  const groups = new Map();
  for (const dir of projects) {
    const key = checkingKey(parseProject(dir));
    groups.set(key, [...(groups.get(key) ?? []), dir]);
  }
  return [...groups.values()].sort((a, b) => b.length - a.length);
}

/**
 * Checks one group as one program; returns its diagnostics as `tsc --noEmit` gathers them
 * (executeCommandLine's emitFilesAndReportErrors): the config files', syntax, then options
 * and globals, then semantics, then (noEmit with declaration on) declaration diagnostics.
 * @param {string[]} group
 */
function checkGroup(group) {
  const parsed = group.map(parseProject);
  const first = /** @type {ts.ParsedCommandLine} */ (parsed[0]);
  const program = ts.createProgram({
    rootNames: [...new Set(parsed.flatMap((p) => p.fileNames))],
    // rootDir and outDir are the first project's; with noEmit nothing is written, and each
    // project's include keeps its own files under its own rootDir already.
    options: { ...first.options, rootDir: undefined, outDir: undefined },
    configFileParsingDiagnostics: parsed.flatMap((p) => ts.getConfigFileParsingDiagnostics(p)),
    projectReferences: first.projectReferences,
  });
  const options = program.getCompilerOptions();
  const all = [...program.getConfigFileParsingDiagnostics()];
  const configErrors = all.length;
  all.push(...program.getSyntacticDiagnostics());
  if (all.length === configErrors) {
    all.push(...program.getOptionsDiagnostics(), ...program.getGlobalDiagnostics());
    if (all.length === configErrors) all.push(...program.getSemanticDiagnostics());
    if (options.noEmit && (options.declaration || options.composite) && all.length === configErrors)
      all.push(...program.getDeclarationDiagnostics());
  }
  return ts.sortAndDeduplicateDiagnostics(all);
}

/** @type {ts.FormatDiagnosticsHost} */
const formatHost = {
  getCanonicalFileName: (fileName) => fileName,
  getCurrentDirectory: () => root,
  getNewLine: () => '\n',
};

function main() {
  const args = process.argv.slice(2);
  const asked = args.filter((arg) => !arg.startsWith('--'));
  const known = new Set(typeProjects());
  const unknown = asked.map((dir) => relative(root, join(process.cwd(), dir))).filter((dir) => !known.has(dir));
  if (unknown.length > 0) {
    console.error(`not a type-checked project (no tsconfig.json there): ${unknown.join(', ')}`);
    return 2;
  }
  const groups = typeGroups(
    asked.length > 0 ? asked.map((dir) => relative(root, join(process.cwd(), dir))) : typeProjects(),
  );
  if (args.includes('--groups')) {
    console.log(JSON.stringify(groups));
    return 0;
  }
  let errors = 0;
  for (const group of groups) {
    const diagnostics = checkGroup(group);
    errors += diagnostics.filter((d) => d.category === ts.DiagnosticCategory.Error).length;
    if (diagnostics.length > 0) {
      // As `tsc --pretty`, which the gate always asked for: colours and the code around each error.
      process.stdout.write(
        `tsc ${group.join(' ')}:\n${ts.formatDiagnosticsWithColorAndContext(diagnostics, formatHost)}\n`,
      );
    }
  }
  return errors > 0 ? 1 : 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) process.exitCode = main();
