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
// A project whose own files declare globals or augment a module (`declare global`, `declare
// module '…'`, gateway's augmentation of 'fastify') gets a program of its own too, as does one
// with project references (with its own references): in a shared program those declarations
// would reach the other projects, specs included, which their own `tsc -p` would fail. What a
// shared program still sees that a package's own does not: the global augmentations of
// third-party packages another project of the group loads (reflect-metadata,
// @fastify/under-pressure, Express's global namespace). Each file is checked with the options
// of its group; a file outside its project's rootDir is reported (TS6059) as `tsc -p` would.
// Unlike tsc, a syntax error in one file does not hide the other files' semantic errors.
//
//   --summary   also writes {errors, files, projects} as JSON to file descriptor 3 (the gate).
import { existsSync, readdirSync, readFileSync, writeSync } from 'node:fs';
import { join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

import ts from 'typescript';

const root = fileURLToPath(new URL('..', import.meta.url));

/** Every folder with a tsconfig.json that type-checks a part of the tree (sources and their tests). */
export function typeProjects() {
  const projects = ['proto', 'test-e2e', 'deploy', 'docs', 'scripts/stack', 'scripts/bundle'];
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
 * JSON with every object's keys sorted, so that the same options written in another order
 * give the same key.
 * @param {unknown} value
 * @returns {string}
 */
function sortedJson(value) {
  if (Array.isArray(value)) return `[${value.map(sortedJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value).filter(([, v]) => v !== undefined);
    entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${sortedJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/**
 * True when one of the project's own files declares globals or augments a module: `declare
 * global`, `declare module '…'` (an augmentation in a module, an ambient module in a script),
 * a declaration file that is not a module (its declarations are global), or a triple-slash
 * reference directive (it loads a lib, @types package or file for the whole program).
 * @param {ts.ParsedCommandLine} parsed
 */
function declaresBeyondItself(parsed) {
  for (const fileName of parsed.fileNames) {
    if (!/\.[cm]?tsx?$/.test(fileName)) continue;
    const text = readFileSync(fileName, 'utf8');
    const declarationFile = /\.d\.[cm]?ts$/.test(fileName);
    if (!declarationFile && !text.includes('declare') && !text.includes('<reference')) continue;
    const sf = ts.createSourceFile(fileName, text, ts.ScriptTarget.Latest, false);
    if (declarationFile && !ts.isExternalModule(sf) && sf.statements.length > 0) return true;
    // A triple-slash reference (`/// <reference lib|types|path=… />`) adds its globals to the
    // whole program it is in, not only to this project.
    if (sf.referencedFiles.length + sf.typeReferenceDirectives.length + sf.libReferenceDirectives.length > 0)
      return true;
    const augments = sf.statements.some(
      (statement) =>
        ts.isModuleDeclaration(statement) &&
        (ts.isStringLiteral(statement.name) || (statement.flags & ts.NodeFlags.GlobalAugmentation) !== 0),
    );
    if (augments) return true;
  }
  return false;
}

/**
 * What decides how a project's files are checked: its compiler options, less those that only
 * say where output goes (with noEmit there is none; rootDir is checked per project after the
 * program, see rootDirDiagnostics), and the @types packages it loads by itself (found from its
 * own folder up). A project with references, or whose files declare globals or augment
 * modules, has a key of its own.
 * @param {string} dir
 * @param {ts.ParsedCommandLine} parsed
 */
function checkingKey(dir, parsed) {
  /** @type {Record<string, unknown>} */
  const options = { ...parsed.options };
  for (const where of ['configFilePath', 'rootDir', 'outDir']) delete options[where];
  const types = [...new Set(ts.getAutomaticTypeDirectiveNames(parsed.options, ts.sys))].sort();
  const alone = (parsed.projectReferences?.length ?? 0) > 0 || declaresBeyondItself(parsed);
  return sortedJson({ options, types, ...(alone ? { alone: dir } : {}) });
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
    const key = checkingKey(dir, parseProject(dir));
    groups.set(key, [...(groups.get(key) ?? []), dir]);
  }
  return [...groups.values()].sort((a, b) => b.length - a.length);
}

/**
 * TS6059 for each file of the program inside a project's folder but outside its rootDir, as
 * that project's own program would report (the shared program has no rootDir).
 * @param {ts.Program} program
 * @param {string[]} group
 * @param {ts.ParsedCommandLine[]} parsed
 * @returns {ts.Diagnostic[]}
 */
function rootDirDiagnostics(program, group, parsed) {
  /** @type {ts.Diagnostic[]} */
  const found = [];
  group.forEach((dir, i) => {
    const rootDir = parsed[i]?.options.rootDir;
    if (rootDir === undefined) return;
    const folder = join(root, dir) + sep;
    const under = resolve(rootDir) + sep;
    for (const sf of program.getSourceFiles()) {
      const fileName = resolve(sf.fileName);
      if (sf.isDeclarationFile || program.isSourceFileFromExternalLibrary(sf)) continue;
      if (!fileName.startsWith(folder) || fileName.startsWith(under)) continue;
      found.push({
        file: sf,
        start: 0,
        length: 0,
        category: ts.DiagnosticCategory.Error,
        code: 6059,
        messageText: `File '${sf.fileName}' is not under 'rootDir' '${rootDir}'. 'rootDir' is expected to contain all source files.`,
      });
    }
  });
  return found;
}

/**
 * Checks one group as one program; returns its diagnostics as `tsc --noEmit` gathers them
 * (executeCommandLine's emitFilesAndReportErrors): the config files', syntax, then options
 * and globals, then semantics, then (noEmit with declaration on) declaration diagnostics;
 * except that the semantic and declaration diagnostics of every file without a syntax error
 * of its own are reported, where tsc stops at the first syntax error of the program.
 * @param {string[]} group
 */
function checkGroup(group) {
  const parsed = group.map(parseProject);
  const first = /** @type {ts.ParsedCommandLine} */ (parsed[0]);
  const program = ts.createProgram({
    rootNames: [...new Set(parsed.flatMap((p) => p.fileNames))],
    // Without rootDir (each project's is checked by rootDirDiagnostics) and outDir: with
    // noEmit nothing is written. A project with references is alone in its group.
    options: { ...first.options, rootDir: undefined, outDir: undefined },
    configFileParsingDiagnostics: parsed.flatMap((p) => ts.getConfigFileParsingDiagnostics(p)),
    projectReferences: first.projectReferences,
  });
  const options = program.getCompilerOptions();
  const all = [...program.getConfigFileParsingDiagnostics()];
  const configErrors = all.length;
  if (configErrors > 0) return ts.sortAndDeduplicateDiagnostics(all);
  const syntactic = program.getSyntacticDiagnostics();
  const broken = new Set(syntactic.map((d) => d.file?.fileName));
  all.push(...syntactic, ...program.getOptionsDiagnostics(), ...program.getGlobalDiagnostics());
  all.push(...rootDirDiagnostics(program, group, parsed));
  const sound = program.getSourceFiles().filter((sf) => !broken.has(sf.fileName));
  for (const sf of sound) all.push(...program.getSemanticDiagnostics(sf));
  if (options.noEmit && (options.declaration || options.composite)) {
    for (const sf of sound) all.push(...program.getDeclarationDiagnostics(sf));
  }
  return ts.sortAndDeduplicateDiagnostics(all);
}

/**
 * The project whose folder holds a file (the deepest), else the file's own path.
 * @param {string} fileName
 * @param {string[]} projects
 */
function projectOf(fileName, projects) {
  const path = relative(root, resolve(fileName));
  const holders = projects.filter((dir) => path.startsWith(dir + sep));
  return holders.sort((a, b) => b.length - a.length)[0] ?? path;
}

/** @type {ts.FormatDiagnosticsHost} */
const formatHost = {
  getCanonicalFileName: (fileName) => fileName,
  getCurrentDirectory: () => root,
  getNewLine: () => '\n',
};

function main() {
  const args = process.argv.slice(2);
  const flags = args.filter((arg) => arg.startsWith('--'));
  const badFlags = flags.filter((flag) => flag !== '--groups' && flag !== '--summary');
  if (badFlags.length > 0) {
    console.error(`unknown option: ${badFlags.join(', ')} (known: --groups, --summary)`);
    return 2;
  }
  const asked = args.filter((arg) => !arg.startsWith('--')).map((dir) => relative(root, resolve(dir)));
  const all = typeProjects();
  const known = new Set(all);
  const unknown = asked.filter((dir) => !known.has(dir));
  if (unknown.length > 0) {
    console.error(`not a type-checked project (no tsconfig.json there): ${unknown.join(', ')}`);
    return 2;
  }
  const groups = typeGroups(asked.length > 0 ? asked : all);
  if (flags.includes('--groups')) {
    console.log(JSON.stringify(groups));
    return 0;
  }
  /** @type {Set<string>} */
  const errors = new Set();
  /** @type {Set<string>} */
  const files = new Set();
  /** @type {Set<string>} */
  const projects = new Set();
  for (const group of groups) {
    const diagnostics = checkGroup(group);
    for (const d of diagnostics.filter((d) => d.category === ts.DiagnosticCategory.Error)) {
      const fileName = d.file?.fileName;
      errors.add(`${fileName ?? ''}:${d.start ?? ''}:${d.code}:${flatten(d.messageText)}`);
      if (fileName === undefined) {
        for (const dir of group) projects.add(dir);
      } else {
        files.add(relative(root, resolve(fileName)));
        projects.add(projectOf(fileName, all));
      }
    }
    if (diagnostics.length > 0) {
      // As `tsc --pretty`, which the gate always asked for: colours and the code around each error.
      process.stdout.write(
        `tsc ${group.join(' ')}:\n${ts.formatDiagnosticsWithColorAndContext(diagnostics, formatHost)}\n`,
      );
    }
  }
  if (errors.size > 0) console.log(`Found ${errors.size} errors in ${files.size} files (${[...projects].join(', ')}).`);
  if (flags.includes('--summary')) {
    writeSync(3, JSON.stringify({ errors: [...errors], files: [...files], projects: [...projects] }));
  }
  return errors.size > 0 ? 1 : 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) process.exitCode = main();
