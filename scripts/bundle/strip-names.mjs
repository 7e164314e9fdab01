// @ts-check
// Removes esbuild's keepNames wrappers (`__name(fn, "fn")`) from a bundle wherever the engine
// already gives the function or class that very name, so names stay as with keepNames while
// the hot paths stop paying for them: a wrapper inside a function runs on every call of it,
// and its Object.defineProperty on a fresh closure costs ~1.4 µs (docs/perf/README.md
// "keepNames wrappers"). A wrapper whose name differs from what the engine infers (a class
// renamed by scope hoisting, Config2 → "Config"; `default`) is kept.
//
// Edits only overwrite removed text with spaces (newlines kept), so every other token keeps
// its line and column and esbuild's source map stays exact.
import * as acorn from 'acorn';

/** esbuild's helper, as it prints it at the top of a bundle built with keepNames. */
const HELPER = /^var __name = \(target, value\) => __defProp\(target, "name", \{ value, configurable: true \}\);$/m;

/**
 * @typedef {import('acorn').Node & Record<string, any>} AnyNode
 * @typedef {{ start: number, end: number, text: string }} Edit
 */

/** @param {AnyNode | null | undefined} node @param {string} name */
const isName = (node, name) => node?.type === 'Identifier' && node.name === name;

/**
 * `__name(<target>, "<string>")` with exactly these two arguments, else undefined.
 * @param {AnyNode} node
 * @returns {{ target: AnyNode, name: string } | undefined}
 */
function nameCall(node) {
  if (node.type !== 'CallExpression' || node.optional || !isName(node.callee, '__name')) return undefined;
  const [target, value] = node.arguments;
  if (node.arguments.length !== 2 || value.type !== 'Literal' || typeof value.value !== 'string') return undefined;
  return { target, name: value.value };
}

/**
 * A class whose own static elements could set `name` (a static member called name, or one
 * with a computed key): keepNames' wrapper runs after them and would win, the engine's name
 * would not, so such a class keeps its wrapper. Static blocks other than esbuild's own count too.
 * @param {AnyNode} classNode
 */
function classMaySetOwnName(classNode) {
  return classNode.body.body.some((/** @type {AnyNode} */ element) => {
    if (element.type === 'StaticBlock') return !isNameBlock(element);
    if (!element.static) return false;
    if (element.computed) return true;
    return isName(element.key, 'name') || element.key.value === 'name';
  });
}

/** `static { __name(this, "…"); }`, the block esbuild adds to a class. @param {AnyNode} block */
function isNameBlock(block) {
  if (block.body.length !== 1 || block.body[0].type !== 'ExpressionStatement') return false;
  const call = nameCall(block.body[0].expression);
  return call !== undefined && call.target.type === 'ThisExpression';
}

/**
 * The name the engine gives `node` by itself where it stands as the value of a binding or
 * property called `inferred` (undefined when it is not a function or class the engine names).
 * @param {AnyNode} node
 * @param {string | undefined} inferred
 */
function ownName(node, inferred) {
  if (node.type === 'ArrowFunctionExpression') return inferred;
  if (node.type === 'FunctionExpression') return node.id ? node.id.name : inferred;
  if (node.type === 'ClassExpression') {
    if (classMaySetOwnName(node)) return undefined;
    return node.id ? node.id.name : inferred;
  }
  return undefined;
}

/**
 * The name a value written at `parent` (its direct child) would be given by the engine's name
 * inference (NamedEvaluation): a `const|let|var x =` initializer, or an object literal's plain
 * `key:` value (not `__proto__`, which sets the prototype instead).
 * @param {AnyNode | undefined} parent
 * @param {AnyNode} child
 */
function inferredName(parent, child) {
  if (parent?.type === 'VariableDeclarator' && parent.init === child && parent.id.type === 'Identifier')
    return parent.id.name;
  if (parent?.type === 'Property' && parent.value === child && parent.kind === 'init' && !parent.computed) {
    if (parent.method || parent.shorthand) return undefined;
    const key = parent.key.type === 'Identifier' ? parent.key.name : parent.key.value;
    if (typeof key !== 'string' || key === '__proto__') return undefined;
    return key;
  }
  return undefined;
}

/** @param {string} text keeps newlines, so lines and columns after it stay where they were */
const blank = (text) => text.replace(/[^\n\r\u2028\u2029]/g, ' ');

/**
 * @param {string} code a bundle esbuild built with keepNames
 * @returns {{ code: string, removed: number, kept: number }}
 */
export function stripRedundantNames(code) {
  // Without esbuild's own helper at the top, `__name` may be something else: leave it alone.
  if (!HELPER.test(code)) return { code, removed: 0, kept: 0 };
  /** Pure annotations by the offset they end at. @type {Map<number, number>} */
  const pureEndingAt = new Map();
  const ast = /** @type {AnyNode} */ (
    acorn.parse(code, {
      ecmaVersion: 'latest',
      sourceType: 'module',
      onComment: (block, text, start, end) => {
        if (block && /^\s*[@#]__PURE__\s*$/.test(text)) pureEndingAt.set(end, start);
      },
    })
  );

  // One pass collects the facts the rules need; a second decides.
  /** Where each name is assigned: a binding can only be assigned from inside its own function. @type {Map<string, number[]>} */
  const assigned = new Map();
  /** @param {number} at @returns {(name: string) => void} */
  const assignedAt = (at) => (name) => {
    const list = assigned.get(name);
    if (list) list.push(at);
    else assigned.set(name, [at]);
  };
  /** Every binding called __name: must be the helper alone. */
  let nameBindings = 0;
  let directEval = false;
  /** @type {{ node: AnyNode, parent: AnyNode | undefined, list: AnyNode[] | undefined, scope: AnyNode }[]} */
  const calls = [];
  /** `var` names per function (or the program), which may hold another value than a function declaration. */
  const vars = new Map();
  /** Parents of the nodes between a static block's statement and its class's parent. */
  const parents = new Map();
  /** The statement list each expression statement stands in. @type {Map<AnyNode, AnyNode[]>} */
  const listOf = new Map();
  const PARENTED = new Set(['ExpressionStatement', 'StaticBlock', 'ClassBody', 'ClassExpression', 'ClassDeclaration']);

  /** @param {AnyNode} pattern @param {(name: string) => void} add */
  const patternNames = (pattern, add) => {
    if (!pattern) return;
    if (pattern.type === 'Identifier') add(pattern.name);
    else if (pattern.type === 'ObjectPattern')
      for (const p of pattern.properties) patternNames(p.type === 'RestElement' ? p.argument : p.value, add);
    else if (pattern.type === 'ArrayPattern') for (const e of pattern.elements) patternNames(e, add);
    else if (pattern.type === 'RestElement') patternNames(pattern.argument, add);
    else if (pattern.type === 'AssignmentPattern') patternNames(pattern.left, add);
  };

  /**
   * Iterative walk (a bundle nests deep enough to matter for recursion).
   * @type {{ node: AnyNode, parent: AnyNode | undefined, list: AnyNode[] | undefined, scope: AnyNode }[]}
   */
  const stack = [{ node: ast, parent: undefined, list: undefined, scope: ast }];
  while (stack.length > 0) {
    const { node, parent, list, scope } = /** @type {(typeof stack)[number]} */ (stack.pop());
    const isFunction =
      node.type === 'FunctionDeclaration' ||
      node.type === 'FunctionExpression' ||
      node.type === 'ArrowFunctionExpression';
    const innerScope = isFunction ? node : scope;
    if (PARENTED.has(node.type)) parents.set(node, parent);
    if (node.type === 'ExpressionStatement' && list) listOf.set(node, list);
    switch (node.type) {
      case 'AssignmentExpression':
        patternNames(node.left, assignedAt(node.start));
        break;
      case 'UpdateExpression':
        if (node.argument.type === 'Identifier') assignedAt(node.start)(node.argument.name);
        break;
      case 'ForInStatement':
      case 'ForOfStatement':
        if (node.left.type !== 'VariableDeclaration') patternNames(node.left, assignedAt(node.start));
        break;
      case 'VariableDeclaration':
        for (const declarator of node.declarations)
          patternNames(declarator.id, (name) => {
            if (name === '__name') nameBindings += 1;
            if (node.kind !== 'var') return;
            if (!vars.has(scope)) vars.set(scope, new Set());
            vars.get(scope).add(name);
          });
        break;
      case 'CallExpression':
        if (isName(node.callee, 'eval')) directEval = true;
        if (nameCall(node)) calls.push({ node, parent, list, scope });
        break;
      default:
        break;
    }
    if (isFunction || node.type === 'ClassDeclaration' || node.type === 'ClassExpression') {
      if (isName(node.id, '__name')) nameBindings += 1;
      if (isFunction) for (const param of node.params) patternNames(param, (n) => n === '__name' && nameBindings++);
    }
    if (node.type === 'CatchClause') patternNames(node.param, (n) => n === '__name' && nameBindings++);
    if (
      node.type === 'ImportSpecifier' ||
      node.type === 'ImportDefaultSpecifier' ||
      node.type === 'ImportNamespaceSpecifier'
    )
      if (isName(node.local, '__name')) nameBindings += 1;
    for (const key of Object.keys(node)) {
      if (key === 'type' || key === 'start' || key === 'end') continue;
      const value = node[key];
      if (Array.isArray(value)) {
        for (let i = value.length - 1; i >= 0; i -= 1) {
          const child = value[i];
          if (child && typeof child.type === 'string')
            stack.push({ node: child, parent: node, list: value, scope: innerScope });
        }
      } else if (value && typeof value.type === 'string') {
        stack.push({ node: value, parent: node, list: undefined, scope: innerScope });
      }
    }
  }
  if (nameBindings !== 1) return { code, removed: 0, kept: calls.length };

  /** @type {Edit[]} */
  const edits = [];
  /** @param {number} start @param {number} end @param {string} [keep] text left at `start` */
  const overwrite = (start, end, keep = '') =>
    edits.push({ start, end, text: keep + blank(code.slice(start + keep.length, end)) });
  /** Blanks the pure annotation right before `start`, which would otherwise mark a bare expression. @param {number} start */
  const dropPureBefore = (start) => {
    let end = start;
    while (end > 0 && /\s/.test(code.charAt(end - 1))) end -= 1;
    const commentStart = pureEndingAt.get(end);
    if (commentStart !== undefined) overwrite(commentStart, end);
  };
  /** Names of the functions and classes each statement list declares. @type {WeakMap<AnyNode[], Set<string>>} */
  const declaredIn = new WeakMap();
  /** @param {AnyNode[]} list */
  const declarations = (list) => {
    let names = declaredIn.get(list);
    if (!names) {
      names = new Set();
      for (const s of list)
        if ((s.type === 'FunctionDeclaration' || s.type === 'ClassDeclaration') && s.id) names.add(s.id.name);
      declaredIn.set(list, names);
    }
    return names;
  };

  let kept = 0;
  for (const { node, parent, scope } of calls) {
    const list = parent && listOf.get(parent);
    const call = /** @type {{ target: AnyNode, name: string }} */ (nameCall(node));
    const { target, name } = call;

    // `__name(g, "g");` after `function g() {}` in the same statement list. Its binding holds
    // that function unless reassigned (by any assignment to that name inside the enclosing
    // function, conservatively, or a `var g` of the same function); a direct eval could
    // assign anything.
    if (target.type === 'Identifier' && target.name === name && parent?.type === 'ExpressionStatement' && list) {
      const declaration =
        declarations(list).has(name) && list.find((s) => s.type === 'ClassDeclaration' && isName(s.id, name));
      if (
        declarations(list).has(name) &&
        !directEval &&
        !(assigned.get(name) ?? []).some((at) => at >= scope.start && at < scope.end) &&
        !vars.get(scope)?.has(name) &&
        !(declaration && classMaySetOwnName(declaration))
      ) {
        overwrite(parent.start, parent.end, ';');
        continue;
      }
    }

    // `static { __name(this, "X"); }` in a class the engine already calls X: the class
    // expression of `var X = class {…}` (named while it is defined, before its static
    // elements run) or `class X {…}`.
    if (target.type === 'ThisExpression' && parent?.type === 'ExpressionStatement') {
      const block = parents.get(parent);
      const classNode = parents.get(parents.get(block));
      if (block?.type === 'StaticBlock' && classNode) {
        const classParent = parents.get(classNode);
        const engine = classMaySetOwnName(classNode)
          ? undefined
          : classNode.id
            ? classNode.id.name
            : inferredName(classParent, classNode);
        if (engine === name) {
          if (block.body.length === 1) overwrite(block.start, block.end);
          else overwrite(parent.start, parent.end, ';');
          continue;
        }
      }
    }

    // `const f = __name(() => …, "f")`, `__name(function g() {…}, "g")`, `{ p: __name(…, "p") }`:
    // the bare function, in parentheses so it parses as it did in any position (the engine
    // names a parenthesized anonymous function or class by its binding all the same).
    if (ownName(target, inferredName(parent, node)) === name) {
      overwrite(node.start, target.start, '(');
      overwrite(target.end, node.end, ')');
      dropPureBefore(node.start);
      continue;
    }
    kept += 1;
  }

  edits.sort((a, b) => a.start - b.start);
  let out = '';
  let at = 0;
  for (const edit of edits) {
    out += code.slice(at, edit.start) + edit.text;
    at = edit.end;
  }
  out += code.slice(at);
  return { code: out, removed: calls.length - kept, kept };
}
