package logmsg

import (
	"go/ast"
	"go/types"

	"golang.org/x/tools/go/analysis"
	"golang.org/x/tools/go/analysis/passes/inspect"
	"golang.org/x/tools/go/ast/inspector"
)

// Analyzer reports logr Info and Error calls whose message is not a
// constant string.
var Analyzer = &analysis.Analyzer{
	Name:     "logmsg",
	Doc:      "check that logr messages are constant strings (the variable parts belong in key/value pairs)",
	Requires: []*analysis.Analyzer{inspect.Analyzer},
	Run:      run,
}

// logrPackage is where the Logger type lives.
const logrPackage = "github.com/go-logr/logr"

// messageArg is the position of the message argument of each checked
// method of logr.Logger.
var messageArg = map[string]int{
	"Info":  0,
	"Error": 1,
}

func run(pass *analysis.Pass) (any, error) {
	ins := pass.ResultOf[inspect.Analyzer].(*inspector.Inspector)
	ins.Preorder([]ast.Node{(*ast.CallExpr)(nil)}, func(n ast.Node) {
		call := n.(*ast.CallExpr)
		sel, ok := call.Fun.(*ast.SelectorExpr)
		if !ok {
			return
		}
		pos, ok := messageArg[sel.Sel.Name]
		if !ok || len(call.Args) <= pos || !isLogger(pass.TypesInfo.TypeOf(sel.X)) {
			return
		}
		msg := call.Args[pos]
		if tv, ok := pass.TypesInfo.Types[msg]; ok && tv.Value != nil {
			return // a constant
		}
		pass.Reportf(msg.Pos(), "the message of %s should be a constant string: put the variable parts in key/value pairs", sel.Sel.Name)
	})
	return nil, nil
}

// isLogger reports whether t is logr.Logger, directly or through an alias
// or a pointer.
func isLogger(t types.Type) bool {
	if t == nil {
		return false
	}
	if p, ok := types.Unalias(t).(*types.Pointer); ok {
		t = p.Elem()
	}
	named, ok := types.Unalias(t).(*types.Named)
	if !ok {
		return false
	}
	obj := named.Obj()
	return obj.Name() == "Logger" && obj.Pkg() != nil && obj.Pkg().Path() == logrPackage
}
