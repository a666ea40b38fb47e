using EbpfProxy.Core.Policy;
using k8s.Models;

namespace EbpfProxy.Core.Tests.Policy;

public class LabelSelectorTests
{
    private static readonly LabelSet Web = LabelSet.From(new Dictionary<string, string> { ["app"] = "web", ["tier"] = "front" });
    private static readonly LabelSet NoTier = LabelSet.From(new Dictionary<string, string> { ["app"] = "web" });

    private static V1LabelSelectorRequirement Expr(string key, string op, params string[] values) =>
        new() { Key = key, OperatorProperty = op, Values = values.Length == 0 ? null : values };

    private static LabelSelector Parse(Dictionary<string, string>? labels = null, params V1LabelSelectorRequirement[] expressions)
    {
        Assert.True(LabelSelector.TryParse(new V1LabelSelector { MatchLabels = labels, MatchExpressions = expressions }, out var s, out var error), error);
        return s;
    }

    [Fact]
    public void EmptySelectorMatchesEverythingAndNullNothing()
    {
        Assert.True(Parse().Matches(Web));
        Assert.True(Parse().Matches(LabelSet.Empty));
        Assert.True(Parse().IsEverything);
        Assert.True(LabelSelector.TryParse(null, out var none, out _));
        Assert.False(none.Matches(Web));
        Assert.False(none.Matches(LabelSet.Empty));
    }

    [Fact]
    public void MatchLabelsAndExpressionsAreAnded()
    {
        var s = Parse(new() { ["app"] = "web" }, Expr("tier", "In", "front", "back"));
        Assert.True(s.Matches(Web));
        Assert.False(s.Matches(NoTier));
        Assert.False(Parse(new() { ["app"] = "web" }, Expr("tier", "In", "back")).Matches(Web));
        Assert.False(Parse(new() { ["app"] = "db" }).Matches(Web));
    }

    [Fact]
    public void NotInAndDoesNotExistAreSatisfiedByAMissingKey()
    {
        Assert.True(Parse(null, Expr("tier", "NotIn", "back")).Matches(Web));
        Assert.False(Parse(null, Expr("tier", "NotIn", "front")).Matches(Web));
        Assert.True(Parse(null, Expr("tier", "NotIn", "front")).Matches(NoTier));
        Assert.True(Parse(null, Expr("tier", "DoesNotExist")).Matches(NoTier));
        Assert.False(Parse(null, Expr("tier", "DoesNotExist")).Matches(Web));
        Assert.True(Parse(null, Expr("tier", "Exists")).Matches(Web));
        Assert.False(Parse(null, Expr("tier", "Exists")).Matches(NoTier));
        Assert.False(Parse(null, Expr("tier", "In", "front")).Matches(NoTier));
    }

    [Theory]
    [InlineData("Equals", new[] { "web" }, "not a valid operator")]
    [InlineData("in", new[] { "web" }, "not a valid operator")]
    [InlineData("In", new string[0], "needs at least one value")]
    [InlineData("NotIn", new string[0], "needs at least one value")]
    [InlineData("Exists", new[] { "web" }, "takes no values")]
    [InlineData("DoesNotExist", new[] { "web" }, "takes no values")]
    public void InvalidSelectorsDoNotCompile(string op, string[] values, string message)
    {
        var selector = new V1LabelSelector { MatchExpressions = [Expr("app", op, values)] };
        Assert.False(LabelSelector.TryParse(selector, out var result, out var error));
        Assert.Contains(message, error);
        Assert.False(result.Matches(Web));
    }

    [Fact]
    public void EquivalentSelectorsHaveTheSameText()
    {
        var a = Parse(new() { ["b"] = "2", ["a"] = "1" });
        var b = Parse(null, Expr("a", "In", "1"), Expr("b", "In", "2"));
        Assert.Equal(a.Text, b.Text);
        Assert.Equal("a=1,b=2", a.Text);
    }

    [Fact]
    public void LabelSetsCompareByContent()
    {
        var a = LabelSet.From(new Dictionary<string, string> { ["x"] = "1", ["y"] = "2" });
        var b = LabelSet.From(new Dictionary<string, string> { ["y"] = "2", ["x"] = "1" });
        Assert.Equal(a, b);
        Assert.Equal(a.GetHashCode(), b.GetHashCode());
        Assert.NotEqual(a, a.With("y", "3"));
        Assert.Same(a, a.With("x", "1"));
        Assert.Equal("x=1,y=2,z=3", a.With("z", "3").ToString());
    }
}
