"""A static cost limit for GraphQL operations (issue 7), beside depth, token and alias limits.

An operation's cost is what it could make the server build: every field costs 1, and a
field that returns a list multiplies what is selected under it by how many items it may
return — its ``first``/``top`` argument (its default if not given, the page-size limit if
it is a variable), else ``UNBOUNDED_LIST`` for lists without a page argument (a session's
events, a funnel's steps). A 10,000-row segment page of a dozen fields costs ~120,000; the
limit refuses, say, 10,000 sessions with every event of each.
"""

from __future__ import annotations

from typing import Any

from graphql import (
    FieldNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationContext,
    ValidationRule,
    VariableNode,
    get_named_type,
)

# trends: breakdownLimit bounds the series per asked series, so it counts as its page
PAGE_ARGUMENTS = ("first", "top", "maxLinks", "breakdownLimit")
UNBOUNDED_LIST = 20  # items assumed for a list field without a page argument


def cost_rule(max_cost: int, page_limit: int) -> type[ValidationRule]:
    class CostLimit(ValidationRule):
        def enter_operation_definition(self, node: OperationDefinitionNode,
                                       *_args: Any) -> None:
            ctx: ValidationContext = self.context
            root = ctx.schema.get_root_type(node.operation)
            if root is None:
                return
            cost = _cost(ctx, node.selection_set, root, page_limit, set())
            if cost > max_cost:
                name = node.name.value if node.name else "the operation"
                ctx.report_error(GraphQLError(
                    f"{name} may cost {cost:,} (the limit is {max_cost:,}): ask for smaller "
                    "pages (first, top) or fewer nested lists", node,
                    extensions={"code": "BAD_USER_INPUT", "cost": cost,
                                "maxCost": max_cost}))

    return CostLimit


def _cost(ctx: ValidationContext, selection_set: SelectionSetNode | None, parent: Any,
          page_limit: int, fragments_seen: set[str], paged: bool = False) -> int:
    """``paged``: the parent field's page argument already counted the items, so lists
    directly under it (a connection's ``edges``) count once."""
    if selection_set is None or not isinstance(parent, GraphQLObjectType):
        return 0
    total = 0
    for sel in selection_set.selections:
        if isinstance(sel, FieldNode):
            field = parent.fields.get(sel.name.value)
            if field is None:
                continue  # another rule reports unknown fields
            items, own_page = _items(sel, field, page_limit, paged)
            # a page of a list (eventDefinitions) counts the lists of each item; a page of
            # a connection counts its edges once
            inner = _cost(ctx, sel.selection_set, get_named_type(field.type), page_limit,
                          fragments_seen, own_page and not _is_list(field.type))
            total += 1 + items * inner
        elif isinstance(sel, InlineFragmentNode):
            target = (ctx.schema.get_type(sel.type_condition.name.value)
                      if sel.type_condition else parent)
            total += _cost(ctx, sel.selection_set, target, page_limit, fragments_seen, paged)
        elif isinstance(sel, FragmentSpreadNode):
            name = sel.name.value
            fragment = ctx.get_fragment(name)
            if fragment is None or name in fragments_seen:
                continue  # unknown or cyclic: other rules report those
            target = ctx.schema.get_type(fragment.type_condition.name.value)
            total += _cost(ctx, fragment.selection_set, target, page_limit,
                           fragments_seen | {name}, paged)
    return total


def _is_list(type_: Any) -> bool:
    return isinstance(type_.of_type if isinstance(type_, GraphQLNonNull) else type_,
                      GraphQLList)


def _items(node: FieldNode, field: Any, page_limit: int, paged: bool) -> tuple[int, bool]:
    """How many items the field may return (1 for anything but a list or a connection), and
    whether a page argument of its own said so."""
    for arg in node.arguments or ():
        if arg.name.value in PAGE_ARGUMENTS:
            if isinstance(arg.value, IntValueNode):
                return max(1, int(arg.value.value)), True
            if isinstance(arg.value, VariableNode):
                return page_limit, True
    for name in PAGE_ARGUMENTS:
        if name in field.args:
            default = field.args[name].default_value
            return (default if isinstance(default, int) and default > 0 else page_limit), True
    if not _is_list(field.type) or paged:
        return 1, False
    return UNBOUNDED_LIST, False
